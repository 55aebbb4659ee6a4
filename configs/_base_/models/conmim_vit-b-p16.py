# The ConMIM pretraining model with a ViT-B/16 (official code: modeling_pretrain.py and
# run_conmim_pretraining.py). Student and momentum teacher are the same BEiT-style ViT (q/v
# bias, layer scale, one relative position bias shared by all blocks, no absolute position
# embedding) followed by a token projector; the teacher is built inside ConMIM as an EMA copy.
# Initialisation as in the official code: truncated normal, std 0.02 cut at +-0.02, for the
# ViT's Linear and Conv2d layers and tokens (ConMIMViT's default) and the projector's Linear
# layers (below; mmpretrain's NonLinearNeck would keep PyTorch's default).
model = dict(
    type='ConMIM',
    backbone=dict(
        type='ConMIMViT',
        arch='base',
        img_size=224,
        patch_size=16,
        out_type='raw',
        final_norm=True,
        drop_path_rate=0.,
        layer_scale_init_value=0.1,
        use_abs_pos_emb=False,
        use_rel_pos_bias=False,
        use_shared_rel_pos_bias=True),
    # Token projector (student and teacher each own one): Linear-BN-ReLU x2, Linear-BN (no
    # affine), no biases, applied to every token. The pretraining runtime's `sync_bn` makes it
    # SyncBN when distributed.
    neck=dict(
        type='NonLinearNeck',
        in_channels=768,
        hid_channels=4096,
        out_channels=256,
        num_layers=3,
        with_bias=False,
        with_last_bn=True,
        with_last_bn_affine=False,
        with_avg_pool=False,
        norm_cfg=dict(type='BN1d'),
        init_cfg=[
            dict(type='TruncNormal', layer='Linear', std=0.02, a=-0.02, b=0.02),
            dict(type='Constant', layer=['_BatchNorm', 'GroupNorm'], val=1),
        ]),
    head=dict(type='ConMIMHead', temperature=0.1),
    base_momentum=0.004,  # teacher coefficient 0.996 ...
    end_momentum=0.)      # ... rising to 1.0 on a cosine over all iterations
