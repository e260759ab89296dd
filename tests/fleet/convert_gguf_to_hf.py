"""Convert a GGUF model into an HF-format directory that vLLM serves.

    python convert_gguf_to_hf.py MODEL.gguf OUT_DIR

Run with the cached vLLM environment's interpreter (it has transformers, gguf,
accelerate and torch). Writes config.json, generation_config.json, the tokenizer files
with the chat template, and model.safetensors in bfloat16: the GGUF's quantized values
dequantized, so the answers are llama.cpp's up to sampling. OUT_DIR appears complete or
not at all (built beside it, then renamed).
"""

import os
import shutil
import sys


def main(gguf, out):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src_dir, name = os.path.split(os.path.abspath(gguf))
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype=torch.bfloat16)
    # The loaded model is marked GGUF-quantized and refuses save_pretrained: copy its
    # weights into a plain model built from the same configuration.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    plain.load_state_dict(loaded.state_dict())
    plain.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if not tokenizer.chat_template:
        raise SystemExit("%s has no chat template: vLLM's chat API needs one" % gguf)
    for f in os.listdir(tmp):
        # save_pretrained writes the weights 0600: the release is published world-readable.
        os.chmod(os.path.join(tmp, f), 0o644)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    print(out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
