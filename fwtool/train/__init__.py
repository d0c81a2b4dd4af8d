"""``fwtool train``: folders of labelled clips in, an int8 model whose features are the device's out.

Modules: ``dataset`` (scan, checks, groups, leak-free split), ``augment`` (waveform variants before the front end),
``featurize`` (the device's features, cached), ``models`` (built-in and user models, TFLM layer check), ``fit``
(Keras training, int8 through fwtool quantize's recipe), ``evaluate`` (float vs int8 report), ``streaming`` (kws:
false accepts per hour and false rejects the way the device decides), ``plots`` (PNGs, optional), ``synth``
(``fwtool dataset synth``: keyword sets from local text-to-speech), ``flow`` (the whole run).
"""
