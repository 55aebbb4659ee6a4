# ConMIM ViT-L/16 pretraining on ImageNet-1K, 1600 epochs: the official README command
# (paper Table 3: 85.5 top-1 after fine-tuning). Layer scale 1e-5 (in the model base), random
# masking of 32-px units at ratio 0.75 (148 of 196 patches), lr 7.5e-4 at batch 2048, 10 warm-up
# epochs, gradient clipping at 1.0.
_base_ = [
    '../_base_/models/conmim_vit-l-p16.py',
    '../_base_/datasets/imagenet_conmim.py',
    '../_base_/schedules/conmim_pretrain_adamw.py',
    '../_base_/pretrain_runtime.py',
]

random_masking = dict(type='ConMIMMaskGenerator', patch_size=16, strategy='random',
                      mask_ratio=0.75, mask_unit_size=32)
train_dataloader = dict(dataset=dict(pipeline=[
    random_masking if step['type'] == 'ConMIMMaskGenerator' else step
    for step in _base_.train_pipeline]))

optim_wrapper = dict(optimizer=dict(lr=7.5e-4), clip_grad=dict(max_norm=1.0))

max_epochs = 1600  # the warm-up stays 10 epochs; the cosine ends with the run
param_scheduler = [_base_.param_scheduler[0],
                   dict(_base_.param_scheduler[1], end=max_epochs)]
train_cfg = dict(max_epochs=max_epochs)
