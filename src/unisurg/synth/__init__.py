"""The built-in synthetic surgical corpus (``unisurg synth``).

- :mod:`.scene` renders tissue, instruments and nuisance; :mod:`.procedure` turns phases
  into instrument tracks; :mod:`.static` renders depth/polyp images;
- :mod:`.layouts` writes a mini version of each of the 17 benchmarks in its real layout;
- :mod:`.corpus` builds the whole corpus (pretraining sources + benchmarks) deterministically.
"""
