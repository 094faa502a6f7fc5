"""Pretraining and distillation on one loop.

:mod:`.loop` is the shared :class:`~unisurg.training.loop.Trainer` (schedule, device and autocast,
backward, clipping, NaN guard, step log, checkpoints, resume); :mod:`.pretrain` (V-JEPA latent
prediction with the three UniSurg objectives, or pixel reconstruction) and :mod:`.distill`
(feature distillation into a small student) supply their step and exports. The blocks are pure
and tested alone: :mod:`.masks` (multiblock 3D masks), :mod:`.losses`, :mod:`.objectives` (motion
weighting, affinity self-distillation, diversity, pixel targets), :mod:`.ema`, :mod:`.schedules`,
:mod:`.parallel` (DDP/FSDP full state dicts) and :mod:`.telemetry` (collapse signals, region probe).
"""
