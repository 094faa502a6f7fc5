"""Video in and out, independent of any model: the layer every stage reads pixels through.

:mod:`.video` opens and writes videos (decord, with a PyAV fallback for what decord cannot copy),
:mod:`.clips` turns the curated clip table into uint8 clip batches and samples steps
deterministically, :mod:`.motion` computes a clip's motion saliency (optical flow or frame
difference per tubelet) for motion-guided latent prediction.
"""
