# The ConMIM pretraining model of the embedded Fashion-MNIST demo: the ViT of vit-t-p4.py
# (6 layers of ViT-Tiny width, 4-px patches) and what changes for 28-px grey images on a CPU:
# a 512-wide projector (4096 would cost several times the backbone at this width) and a faster
# teacher for the short schedule (EMA 0.99 -> 1 instead of 0.996 -> 1: with zero-init relative
# position bias and no absolute positions every mask token starts identical, the loss sits at
# chance until the bias table breaks the symmetry, ~300 iterations here, and a slow teacher
# then barely follows the student within 600 iterations; docs/results.md has the ablation).
# Not in the paper, for Fashion-MNIST only: pixel-identical patches are no negatives of each
# other (ConMIM(exclude_identical_negatives=True)). About half of the 4-px patches of a crop are
# uniform black background, and the official InfoNCE asks each to pick its own teacher token
# among identical ones, which only positions decide. Measured at the demo budget (docs/results.md,
# "Diagnosis at the demo budget"): fine-tuning from the teacher on 10k labels reaches 52.4 +- 0.7 %
# on the validation split (seeds 0, 1) against 35.2 +- 5.6 % from random weights, and 32.4 %
# with the official loss (seed 0).
_base_ = ['./conmim.py', './vit-t-p4.py']

model = dict(
    backbone=_base_.conmim_vit,
    neck=dict(in_channels=_base_.embed_dims, hid_channels=512),
    base_momentum=0.01,
    exclude_identical_negatives=True)
