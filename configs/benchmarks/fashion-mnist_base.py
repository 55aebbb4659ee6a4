# Shared pieces of the MAE and fine-tuning configs of the Fashion-MNIST benchmark
# (docs/results.md): data root, the test-time pipeline (grey -> 3 channels, nothing else) and
# the normalisation of the embedded ConMIM config.
data_root = 'data/fashion_mnist/'
img_size = 28
patch_size = 4
mean, std = [72.94] * 3, [90.02] * 3
test_pipeline = [
    dict(type='NumpyToPIL', to_rgb=False),
    dict(type='torchvision/Grayscale', num_output_channels=3),
    dict(type='PILToNumpy', to_bgr=False),
    dict(type='PackInputs'),
]
