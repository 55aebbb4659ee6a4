# ConMIM ViT-S/16 (384 wide, 12 layers, 6 heads) pretraining on ImageNet-1K, 300 epochs
# (paper Table 2: 82.0 top-1 after fine-tuning). The repo gives no ViT-S command; the values
# are the official code's defaults (lr 5e-4, 5 warm-up epochs, block masking, layer scale 0.1).
_base_ = [
    '../_base_/models/conmim_vit-s-p16.py',
    '../_base_/datasets/imagenet_conmim.py',
    '../_base_/schedules/conmim_pretrain_adamw.py',
    '../_base_/pretrain_runtime.py',
]

max_epochs = 300
warmup_epochs = 5
param_scheduler = [
    dict(_base_.param_scheduler[0], end=warmup_epochs),
    dict(_base_.param_scheduler[1], begin=warmup_epochs, end=max_epochs),
]
train_cfg = dict(max_epochs=max_epochs)
