# The ConMIM pretraining model of any ViT size (official code: modeling_pretrain.py and
# run_conmim_pretraining.py); conmim_vit-b-p16.py and conmim_vit-t-p4.py add the ViT
# (`backbone=_base_.conmim_vit`) and the projector's input width. Student and momentum teacher
# are the same BEiT-style ViT followed by a token projector; the teacher is built inside ConMIM
# as an EMA copy. Initialisation as in the official code: truncated normal, std 0.02 cut at
# +-0.02, for the ViT's Linear and Conv2d layers and tokens (ConMIMViT's default) and the
# projector's Linear layers (below; mmpretrain's NonLinearNeck would keep PyTorch's default).
model = dict(
    type='ConMIM',
    # all tokens after the final norm, [CLS] included, no drop path
    backbone=dict(out_type='raw', final_norm=True, drop_path_rate=0.),
    # Token projector (student and teacher each own one): Linear-BN-ReLU x2, Linear-BN (no
    # affine), no biases, applied to every token; per-GPU BatchNorm (pretrain_runtime.py's
    # `sync_bn`).
    neck=dict(
        type='NonLinearNeck', hid_channels=4096, out_channels=256, num_layers=3,
        with_bias=False, with_last_bn=True, with_last_bn_affine=False, with_avg_pool=False,
        norm_cfg=dict(type='BN1d'),
        init_cfg=[
            dict(type='TruncNormal', layer='Linear', std=0.02, a=-0.02, b=0.02),
            dict(type='Constant', layer=['_BatchNorm', 'GroupNorm'], val=1),
        ]),
    head=dict(type='ConMIMHead', temperature=0.1),
    base_momentum=0.004,  # the student's weight in the first teacher update: teacher 0.996 ...
    end_momentum=0.)      # ... rising to 1.0 on a cosine over all iterations
