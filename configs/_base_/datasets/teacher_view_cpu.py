# The teacher's view as mmpretrain CPU transforms (BYOL's second-view photometric set: colour
# jitter, grey, blur, solarize; the official ConMIM values), for pipelines whose data workers
# build both views with MultiView: imagenet_conmim.py's cpu_views_pipeline and the Fashion-MNIST
# demo. The default ImageNet pipeline draws the same perturbations (DrawTeacherPerturbations)
# and applies them on the device.
strong_view = [
    dict(type='RandomApply',
         transforms=[dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.2,
                          hue=0.1)],
         prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.2989)),
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf', prob=0.1),
    dict(type='Solarize', thr=128, prob=0.2),
]
