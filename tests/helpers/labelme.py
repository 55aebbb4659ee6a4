"""Debian's labelme-examples photos (3 VOC images with pixel labels, a COCO json with polygons),
laid out as the downstream datasets expect them."""
import os
import shutil

import numpy as np
import pytest

LABELME = '/usr/share/doc/labelme-examples/examples'
VOC_SEG = os.path.join(LABELME, 'semantic_segmentation', 'data_dataset_voc')
COCO_DIR = os.path.join(LABELME, 'instance_segmentation', 'data_dataset_coco')
needs_labelme = pytest.mark.skipif(not os.path.isdir(LABELME),
                                   reason='Debian labelme-examples is not installed')
# VOC label -> ADE20K png value (ADE150 index + 1; 0 = "other", ignored by reduce_zero_label):
# bottle, bus, car, chair, person, sofa. Background and the 255 boundary become 0.
VOC_TO_ADE = {5: 99, 6: 81, 7: 21, 9: 20, 15: 13, 18: 24}
VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
               'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'potted plant',
               'sheep', 'sofa', 'train', 'tv/monitor')


def write_ade_layout(root):
    """labelme's 3 VOC photos with pixel labels, in ADE20K's folders and label values, under
    ``root`` (a pathlib.Path); returns ``root``."""
    from PIL import Image
    lut = np.zeros(256, np.uint8)
    for voc, ade in VOC_TO_ADE.items():
        lut[voc] = ade
    names = sorted(f[:-4] for f in os.listdir(os.path.join(VOC_SEG, 'JPEGImages')))
    for split in ('training', 'validation'):
        for sub in ('images', 'annotations'):
            (root / sub / split).mkdir(parents=True)
        for name in names:
            shutil.copy(os.path.join(VOC_SEG, 'JPEGImages', name + '.jpg'),
                        root / 'images' / split / (name + '.jpg'))
            label = np.array(Image.open(os.path.join(VOC_SEG, 'SegmentationClassPNG', name + '.png')))
            Image.fromarray(lut[label]).save(root / 'annotations' / split / (name + '.png'))
    return root
