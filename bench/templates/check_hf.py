#!/usr/bin/env python3
"""Expected chat-template renders from transformers, for test/openai/templates.test.ts.

Reads the public chat templates (test/openai/fixtures/templates.json) and the conversations
(test/openai/fixtures/template-cases.json), renders each case with transformers' apply_chat_template
(tokenize=False, add_generation_prompt=True) on a tokenizer built offline from a tiny word-level vocabulary
with the template set (no network, no model download), and writes {case name: rendered text} as JSON.

Messages are given to transformers as its documentation asks: tool-call arguments as mappings (OpenAI sends
JSON strings; swapserve parses them the same way), and the `developer` role as `system` (swapserve's rule for
templates that do not name the developer role). Nothing else is changed.

Usage (repo root, on a machine with transformers):
    python3 bench/templates/check_hf.py [OUT_JSON]   # default test/openai/fixtures/hf-renders.json
"""
import json
import os
import sys

import transformers
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, '..', '..', 'test', 'openai', 'fixtures')


def tokenizer_for(spec):
    vocab = {'[UNK]': 0}
    for t in (spec['bos'], spec['eos']):
        if t and t not in vocab:
            vocab[t] = len(vocab)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel(vocab, unk_token='[UNK]')),
        bos_token=spec['bos'] or None, eos_token=spec['eos'] or None, unk_token='[UNK]',
    )
    tok.chat_template = spec['template']
    return tok


def hf_messages(messages, template):
    out = []
    knows_developer = 'developer' in template
    for m in messages:
        m = dict(m)
        if m['role'] == 'developer' and not knows_developer:
            m['role'] = 'system'
        if m.get('tool_calls'):
            calls = []
            for c in m['tool_calls']:
                c = json.loads(json.dumps(c))
                try:
                    args = json.loads(c['function']['arguments'])
                    if isinstance(args, dict):
                        c['function']['arguments'] = args
                except (ValueError, TypeError):
                    pass
                calls.append(c)
            m['tool_calls'] = calls
        out.append(m)
    return out


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(FIX, 'hf-renders.json')
    templates = json.load(open(os.path.join(FIX, 'templates.json')))
    cases = json.load(open(os.path.join(FIX, 'template-cases.json')))['cases']
    renders = {}
    failed = 0
    for case in cases:
        spec = templates[case['template']]
        tok = tokenizer_for(spec)
        kwargs = {'tokenize': False, 'add_generation_prompt': True}
        if case.get('tools'):
            kwargs['tools'] = case['tools']
        try:
            renders[case['name']] = tok.apply_chat_template(hf_messages(case['messages'], spec['template']), **kwargs)
            print(f"ok     {case['name']}")
        except Exception as e:  # a template that raises: recorded, so the TS side expects a refusal
            renders[case['name']] = {'error': f'{type(e).__name__}: {e}'}
            failed += 1
            print(f"raises {case['name']}: {e}")
    doc = {'_generated_by': 'bench/templates/check_hf.py', '_transformers': transformers.__version__, 'renders': renders}
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, 'w') as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
    print(f'{len(renders)} cases ({failed} raise) -> {out_path}')


if __name__ == '__main__':
    main()
