# ConMIM's asymmetric views of ImageNet-1K (mmpretrain's data/imagenet layout).
# One crop and flip shared by both views; the student view is only normalised (and masked by
# the model), the teacher view gets BYOL's second-view photometric set.
_base_ = './teacher_view_cpu.py'

dataset_type = 'ImageNet'
data_root = 'data/imagenet/'
img_size = 224
patch_size = 16

# Builds both views from the crop on the training device (it also takes two views from the
# CPU pipeline below and then only normalises them, as SelfSupDataPreprocessor does).
data_preprocessor = dict(
    type='ConMIMDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
    # The batch (pinned by the dataloader) is copied without making the host wait for the GPU.
    non_blocking=True)

# The teacher's perturbations (the official ConMIM transforms): the workers draw them, the
# data preprocessor applies them on the device with the values of the official PIL ops.
teacher_perturbations = dict(
    type='DrawTeacherPerturbations', jitter_prob=0.8, brightness=0.4, contrast=0.4,
    saturation=0.2, hue=0.1, grayscale_prob=0.2, blur_prob=0.1, blur_sigma=(0.1, 2.0),
    solarize_prob=0.2, solarize_threshold=128)
# Block-wise masking, 75 of 196 patches at 224/16 (the official code's default). The ViT-L
# recipe switches to random masking of 32-px units: strategy='random', mask_ratio=0.75.
mask_generator = dict(type='ConMIMMaskGenerator', patch_size=patch_size, strategy='block',
                      mask_ratio=75 / 196, min_num_patches=16, input_size=img_size)
load = dict(type='LoadImageFromFileOrSkip', max_unreadable_share=0.01)  # skips unreadable files
crop_args = dict(scale=img_size, crop_ratio_range=(0.08, 1.0),
                 aspect_ratio_range=(3. / 4., 4. / 3.), interpolation='bicubic')
# The default: the workers send one uint8 crop, its mask and the drawn parameters. The crop is
# resized by torch's uint8 kernel (Pillow's bicubic within 2 grey levels, 3x faster).
train_pipeline = [
    load,
    dict(type='TorchRandomResizedCrop', **crop_args),
    dict(type='RandomFlip', prob=0.5),
    teacher_perturbations,
    mask_generator,
    dict(type='PackInputs', algorithm_keys=['teacher_params']),
]

# The same views built by the workers with mmpretrain's CPU transforms (the reference of the
# tests; about 4.4x slower per core, tools/analysis/benchmark_data.py), with the teacher view
# of teacher_view_cpu.py. To use it, a config says:
#   train_dataloader = dict(dataset=dict(pipeline=_base_.cpu_views_pipeline))
cpu_views_pipeline = [
    load,
    dict(type='RandomResizedCrop', **crop_args, backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    # [student, teacher]
    dict(type='MultiView', num_views=[1, 1], transforms=[[], _base_.strong_view]),
    mask_generator,
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=10,
    persistent_workers=False,  # EpochSeedHook re-seeds workers every epoch (exact resume)
    pin_memory=True,
    drop_last=True,  # as the official loader: 625 full steps per epoch at 2048 images, not 626
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline))
