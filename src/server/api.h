// The OpenAI-compatible API: HTTP requests in, JSON and Server-Sent Events out. This is the edge
// where HTTP and JSON live: it validates, renders the chat template, tokenizes, hands a GenRequest to
// the Engine and turns the engine's events into OpenAI responses.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "server/engine.h"
#include "server/http.h"
#include "server/request.h"

namespace rotor {
struct Model;
class Vocab;
namespace chat {
class ChatTemplate;
}
}  // namespace rotor

namespace rotor::server {

struct ServeOptions {
    std::string model_path;
    std::string alias;               // the model id clients see ("" -> file name without .gguf)
    std::string api_key;             // "" -> no authentication
    std::string chat_template_file;  // "" -> the GGUF's tokenizer.chat_template
    EngineConfig engine;
};

class ApiServer {
public:
    explicit ApiServer(ServeOptions opt);
    ~ApiServer();

    // Loads the model, vocabulary, chat template and engine. Until it returns, /health answers 503
    // and the other endpoints 503 too. Throws rotor::Error.
    void load();
    bool ready() const { return ready_.load(); }

    // The HTTP handler (thread-safe: many connections call it at once).
    void handle(const HttpRequest& req, HttpResponse& res);

    // Stops the engine (running requests end with an error event).
    void shutdown();

    const std::string& model_id() const { return model_id_; }
    Engine* engine() { return engine_.get(); }
    const Vocab* vocab() const { return vocab_.get(); }

    // Tokens of a rendered chat prompt / a completion prompt (BOS added once, special tokens parsed).
    std::vector<int32_t> tokenize_prompt(const std::string& text) const;

private:
    void chat_completions(const HttpRequest& req, HttpResponse& res);
    void completions(const HttpRequest& req, HttpResponse& res);
    void tokenize(const HttpRequest& req, HttpResponse& res);
    void detokenize(const HttpRequest& req, HttpResponse& res);
    void metrics(HttpResponse& res);
    void props(HttpResponse& res);
    void slots(HttpResponse& res);
    void models(HttpResponse& res);

    RequestLimits limits() const;

    ServeOptions opt_;
    std::string model_id_;
    std::atomic<bool> ready_{false};
    std::unique_ptr<Model> model_;
    std::unique_ptr<Vocab> vocab_;
    std::unique_ptr<chat::ChatTemplate> template_;
    std::string template_source_;
    SamplerParams sampling_defaults_;  // the model's recommended sampling, read once at load
    std::unique_ptr<Engine> engine_;
};

}  // namespace rotor::server
