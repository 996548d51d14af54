// The chat-template families swapserve renders, with the reference Jinja text each family's models ship
// (used to recognise a model's template, and written into synthetic models).

export type ChatFamily = 'llama3' | 'llama2' | 'mistral' | 'chatml';

export const REFERENCE_TEMPLATES: Record<ChatFamily, string> = {
  llama3:
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + " +
    "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}" +
    '{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}' +
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
  llama2:
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = " +
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}" +
    "{% for message in loop_messages %}{% if loop.index0 == 0 and system_message != false %}{% set content = " +
    "'<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = " +
    "message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + " +
    "' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
  // Mistral Instruct's [INST] form, with a system message folded into the first user turn (as the family renders it).
  mistral:
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = " +
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}" +
    "{% for message in loop_messages %}{% if message['role'] == 'user' %}{% if loop.index0 == 0 and system_message != false %}" +
    "{{ '[INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}{% else %}{{ '[INST] ' + message['content'] + " +
    "' [/INST]' }}{% endif %}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% endif %}{% endfor %}" +
    "{% if loop_messages | length == 0 and system_message != false %}{{ '[INST] ' + system_message + ' [/INST]' }}{% endif %}",
  chatml:
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + " +
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
};

/** Recognise a template's family from its text (no Jinja engine: the family's markers are distinctive). */
export function templateFamily(template: string): ChatFamily | null {
  if (template.includes('<|start_header_id|>')) return 'llama3';
  if (template.includes('<|im_start|>')) return 'chatml';
  if (template.includes('[INST]')) return template.includes('<<SYS>>') ? 'llama2' : 'mistral';
  return null;
}
