"""The model family: loading any model spec (``loading``), what a local model folder must hold (``folder``), LoRA
adapters through peft (``adapters``), the tiny test models (``tiny``), Hub errors explained (``hub``) and the dtype
rules of training and inference (``precision``).
"""
