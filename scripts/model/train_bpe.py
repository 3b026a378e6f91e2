#!/usr/bin/env python3
"""A byte-level BPE tokenizer (GPT-2 style) for rotor's small model, trained on its corpus.

Pure Python (Debian's python3, no extra modules). The pre-tokenizer is GPT-2's regex, written for
ASCII input (the KJV corpus is ASCII; the script refuses anything else), so rotor's `gpt-2`
pre-tokenizer splits the text identically. Writes:
  OUT/tokenizer.json   Hugging Face format (model BPE, byte-level), read by rotor's converter
  OUT/train.bin  little-endian uint16 token ids, each chapter preceded by <|endoftext|>
  OUT/val.bin    <|endoftext|> then the whole validation text as one stream

Usage: train_bpe.py CORPUS_DIR OUT_DIR [VOCAB_SIZE]
"""
import array
import collections
import heapq
import json
import os
import re
import sys

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# GPT-2's pattern restricted to ASCII: \p{L} -> [A-Za-z], \p{N} -> [0-9].
PRETOKENIZE = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")


def bytes_to_unicode():
    """GPT-2's reversible map from bytes to printable code points."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = bytes_to_unicode()


def words_of(text):
    return ["".join(B2U[b] for b in w.encode("utf-8")) for w in PRETOKENIZE.findall(text)]


def train(text, vocab_size):
    counts = collections.Counter(words_of(text))
    words = [list(w) for w in counts]
    freq = [counts[w] for w in counts]
    pair_count = collections.Counter()
    where = collections.defaultdict(set)  # pair -> word indices containing it
    for i, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pair_count[(a, b)] += freq[i]
            where[(a, b)].add(i)
    vocab = [B2U[b] for b in range(256)]
    merges = []
    # max-heap of (-count, pair); stale entries are skipped when their count changed
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    while len(vocab) + len(SPECIALS) < vocab_size and heap:
        c, pair = heapq.heappop(heap)
        if -c != pair_count.get(pair, 0) or -c <= 0:
            continue
        a, b = pair
        merged = a + b
        merges.append(pair)
        vocab.append(merged)
        for i in list(where[pair]):
            w, f = words[i], freq[i]
            j, out = 0, []
            changed = set()
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            for x, y in zip(w, w[1:]):
                pair_count[(x, y)] -= f
                changed.add((x, y))
            for x, y in zip(out, out[1:]):
                pair_count[(x, y)] += f
                where[(x, y)].add(i)
                changed.add((x, y))
            words[i] = out
            for p in changed:
                if pair_count[p] > 0:
                    heapq.heappush(heap, (-pair_count[p], p))
        del where[pair]
    return vocab, merges


def encode(text, rank):
    ids = []
    cache = {}
    for w in words_of(text):
        if w not in cache:
            parts = list(w)
            while len(parts) > 1:
                best = min(((rank.get((x, y), 1 << 30), k) for k, (x, y) in enumerate(zip(parts, parts[1:]))))
                if best[0] == 1 << 30:
                    break
                k = best[1]
                parts[k:k + 2] = [parts[k] + parts[k + 1]]
            cache[w] = parts
        ids.extend(cache[w])
    return ids


def main():
    corpus, out = sys.argv[1], sys.argv[2]
    vocab_size = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
    os.makedirs(out, exist_ok=True)
    train_text = open(os.path.join(corpus, "train.txt"), encoding="utf-8").read()
    val_text = open(os.path.join(corpus, "val.txt"), encoding="utf-8").read()
    if not (train_text + val_text).isascii():
        sys.exit("corpus is not ASCII: the ASCII form of the GPT-2 pattern would not match rotor's pre-tokenizer")
    vocab, merges = train(train_text, vocab_size)
    token_id = {t: i for i, t in enumerate(vocab)}
    specials = {s: len(vocab) + k for k, s in enumerate(SPECIALS)}
    rank = {p: r for r, p in enumerate(merges)}
    tok = {
        "version": "1.0",
        "added_tokens": [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for s, i in specials.items()],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "vocab": {**token_id, **specials}, "merges": [f"{a} {b}" for a, b in merges]},
    }
    json.dump(tok, open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8"), ensure_ascii=False, indent=1)
    eot = specials["<|endoftext|>"]
    for name, text in (("train", train_text), ("val", val_text)):
        if name == "train":  # each chapter a document, so the model learns to start after and end with <|endoftext|>
            ids = []
            for chapter in text.split("\n\n"):
                if chapter.strip():
                    ids += [eot] + [token_id[p] for p in encode(chapter + "\n\n", rank)]
        else:  # one stream, exactly what `rotor perplexity -f val.txt` tokenizes (BOS + the text)
            ids = [eot] + [token_id[p] for p in encode(text, rank)]
        array.array("H", ids).tofile(open(os.path.join(out, name + ".bin"), "wb"))
        print(f"{name}: {len(text)} chars -> {len(ids)} tokens ({len(text) / len(ids):.2f} chars/token)")
    print(f"vocab {len(vocab) + len(SPECIALS)} ({len(merges)} merges, {len(SPECIALS)} specials)")


if __name__ == "__main__":
    main()
