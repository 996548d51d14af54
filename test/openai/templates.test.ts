// Chat templates rendered from the models' own Jinja text (Llama 3.1, Qwen2.5, Mistral v0.3, public template
// strings in fixtures/templates.json), messages and tools taken through the gateway's parsing (contracts/job.ts)
// exactly as a request's are. Compared with transformers' apply_chat_template renders in fixtures/hf-renders.json
// (written on a machine with transformers by bench/templates/check_hf.py); without that file those comparisons skip.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chatMessageSchema, jobMessage, toolSchema } from '../../contracts/job.ts';
import { chatParts } from '../../native/ts/tokenizer/chat.ts';
import type { ChatMessage } from '../../native/ts/tokenizer/types.ts';

const FIX = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
type Spec = { template: string; bos: string; eos: string };
const TEMPLATES = JSON.parse(readFileSync(join(FIX, 'templates.json'), 'utf8')) as Record<string, Spec>;
type Case = { name: string; template: string; messages: unknown[]; tools?: unknown[] };
const CASES = (JSON.parse(readFileSync(join(FIX, 'template-cases.json'), 'utf8')) as { cases: Case[] }).cases;
const HF_FILE = join(FIX, 'hf-renders.json');
const HF = existsSync(HF_FILE) ? (JSON.parse(readFileSync(HF_FILE, 'utf8')) as { renders: Record<string, string | { error: string }> }).renders : null;
const NO_HF = HF ? false : 'fixtures/hf-renders.json is absent: run `python3 bench/templates/check_hf.py` where transformers is installed';

/** What the worker renders for a request's messages and tools (same parsing as the gateway, same render path). */
export function render(c: Case, specials: string[] = []): string {
  const spec = TEMPLATES[c.template];
  const messages = c.messages.map((m) => jobMessage(chatMessageSchema.parse(m))) as ChatMessage[];
  const tools = c.tools?.map((t) => toolSchema.parse(t));
  return chatParts({ family: 'chatml', template: spec.template, bos: spec.bos, eos: spec.eos, specials }, messages, { tools }).map((p) => p.text).join('');
}

const byName = (name: string) => CASES.find((c) => c.name === name)!;

describe('model templates (no transformers needed)', () => {
  it('Llama 3.1 keeps the system message in its own block after the dates (the family render lost it)', () => {
    const out = render(byName('llama31: system kept'));
    assert.equal(out, '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n'
      + 'You are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n');
  });

  it('developer is rendered as system where the template has no such role', () => {
    const dev = render(byName('qwen25: developer as system'));
    assert.match(dev, /^<\|im_start\|>system\nAnswer in French\.<\|im_end\|>\n<\|im_start\|>user\nHi<\|im_end\|>\n<\|im_start\|>assistant\n$/);
  });

  it('tools are rendered by each template, and history tool calls carry their arguments as JSON objects', () => {
    const llama = render(byName('llama31: tools'));
    assert.ok(llama.includes('Environment: ipython') && llama.includes('"name": "get_weather"'), llama);
    const qwen = render(byName('qwen25: parallel tool calls and results in the history'));
    assert.ok(qwen.includes('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call>'), qwen);
    assert.ok(qwen.includes('<tool_response>\n14:02\n</tool_response><|im_end|>'), qwen);
    const mistral = render(byName('mistral: tool call and result in the history'));
    assert.ok(mistral.includes('[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcDEF123"}]'), mistral);
    assert.ok(mistral.includes('[AVAILABLE_TOOLS]'), mistral);
  });

  it('content that spells a special token comes back as a literal part, the template\'s own specials do not', () => {
    const spec = TEMPLATES.qwen25;
    const parts = chatParts({ family: 'chatml', template: spec.template, bos: '', eos: spec.eos, specials: ['<|im_start|>', '<|im_end|>'] },
      [{ role: 'user', content: 'a<|im_end|>b' }]);
    const literal = parts.filter((p) => p.literal).map((p) => p.text);
    assert.deepEqual(literal, ['<|im_end|>']);
    assert.equal(parts.map((p) => p.text).join(''), render({ name: 'x', template: 'qwen25', messages: [{ role: 'user', content: 'a<|im_end|>b' }] }));
  });

  it('a template that raises is a bad_messages TokenizerError with its message (the worker maps it to a 400)', () => {
    // Llama 3.1 refuses tools with no user message to put them in.
    assert.throws(() => render({ name: 'x', template: 'llama31', messages: [{ role: 'system', content: 's' }], tools: byName('llama31: tools').tools }),
      (e: Error & { code?: string }) => e.code === 'bad_messages' && /first user message/.test(e.message));
  });
});

describe('model templates equal transformers\' apply_chat_template', { skip: NO_HF }, () => {
  for (const c of CASES) {
    it(c.name, () => {
      const want = HF![c.name];
      assert.ok(want !== undefined, `hf-renders.json has no case "${c.name}": regenerate it`);
      if (typeof want === 'object') {
        assert.throws(() => render(c), `transformers raised (${want.error}); so must we`);
        return;
      }
      assert.equal(render(c), want);
    });
  }
});
