# Fashion-MNIST (28x28 grey, 10 classes) as mmpretrain's FashionMNIST reads it from the idx
# files that `python tools/data/prepare_fashion_mnist.py` puts in data/fashion_mnist/. Shared by
# the embedded demo (pretraining and fine-tuning) and the benchmark of docs/results.md.
data_root = 'data/fashion_mnist/'
img_size = 28

# mean / std of the 60k training images, the grey value replicated to three channels
data_preprocessor = dict(mean=[72.94] * 3, std=[90.02] * 3, to_rgb=False)

grey_to_rgb = [
    dict(type='NumpyToPIL', to_rgb=False),
    dict(type='torchvision/Grayscale', num_output_channels=3),
    dict(type='PILToNumpy', to_bgr=False),
]
test_pipeline = [*grey_to_rgb, dict(type='PackInputs')]  # nothing else at test time

# The crop of every pretraining arm (ConMIM, MAE, SimMIM): crop scale (0.2, 1) at 28 px, flip;
# each arm adds its views or mask and PackInputs, and loads batches of 64 with `pretrain_loader`.
pretrain_crop = [
    *grey_to_rgb,
    dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.2, 1.0),
         interpolation='bicubic', backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
]
pretrain_loader = dict(batch_size=64, num_workers=1, persistent_workers=False, pin_memory=False,
                       sampler=dict(type='DefaultSampler', shuffle=True),
                       collate_fn=dict(type='default_collate'))

# The three splits (conmim_mm SplitFashionMNIST, mmpretrain's FashionMNIST cut in two): the
# last 10k of the 60k training images are held out as the validation split, on which every
# choice is made (the kNN monitor, the benchmark's sweeps); training reads the first 50k; the
# 10k test images are read by the final evaluations only. indices=None: the whole split;
# indices=N: its first N.
val_images = 10000
train_set = dict(type='SplitFashionMNIST', data_root=data_root, split='train',
                 val_images=val_images, indices=None)
val_set = dict(type='SplitFashionMNIST', data_root=data_root, split='val', test_mode=False,
               val_images=val_images, indices=None)
test_set = dict(type='SplitFashionMNIST', data_root=data_root, split='test', test_mode=True,
                val_images=val_images, indices=None)

# Evaluation loaders: in dataset order, one batched tensor per batch.
eval_loader = dict(batch_size=500, num_workers=0, persistent_workers=False, pin_memory=False,
                   sampler=dict(type='DefaultSampler', shuffle=False),
                   collate_fn=dict(type='default_collate'))

# kNN top-1 of frozen features during pretraining (conmim_mm KNNMonitorHook): the first 10k
# training images are the bank, the first 2k images of the validation split are classified
# (never the test images). Pretraining configs add it to custom_hooks with their encoder
# ('teacher' for ConMIM).
knn_monitor = dict(
    type='KNNMonitorHook', interval=1, k=20, pooling='mean',
    bank_dataloader=dict(eval_loader, dataset=dict(train_set, indices=10000,
                                                   pipeline=test_pipeline)),
    val_dataloader=dict(eval_loader, dataset=dict(val_set, indices=2000,
                                                  pipeline=test_pipeline)))
