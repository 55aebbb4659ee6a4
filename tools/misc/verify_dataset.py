"""List every image and annotation file of a config's dataset that cannot be read, before a
long run.

    python tools/misc/verify_dataset.py CONFIG [--split train|val|test] [--workers N]
        [--cfg-options k=v ...]

Builds the split's dataset from the config (which parses its annotation file, a COCO json for
instance, and so lists the images it names) and reads each sample's image with the pipeline's
own loading transform (same file backend, decoder and colour settings; truncated JPEGs and
PNGs and images above the loader's ``max_pixels`` count as unreadable), and its label map when
the pipeline's ``LoadAnnotations`` reads one (segmentation). Prints one ``path<TAB>reason`` line
per unreadable file (file names as their bytes, whatever their encoding) and a summary; exits 1
when there is any, 0 when every file reads.
"""
import argparse
import os.path as osp
import sys
from multiprocessing import get_context

from mmengine.config import Config, DictAction
from mmengine.registry import DATASETS, init_default_scope
from mmengine.utils import import_modules_from_strings

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from conmim_mm.datasets import (DatasetNotFoundError, check_dataset_paths,  # noqa: E402
                                unreadable_annotation_reason, unreadable_reason)

_state = {}  # the dataset and loaders, shared with forked workers


def parse_args():
    parser = argparse.ArgumentParser(description='List the unreadable images of a dataset')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train',
                        help='which dataloader\'s dataset to scan (default: train)')
    parser.add_argument('--workers', type=int, default=4, help='parallel reader processes')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_dataloader.dataset.data_root=X')
    return parser.parse_args()


def image_datasets(dataset):
    """The datasets holding a pipeline, through wrappers (Repeat, ClassBalanced, Concat)."""
    if hasattr(dataset, 'datasets'):
        return [leaf for sub in dataset.datasets for leaf in image_datasets(sub)]
    if hasattr(dataset, 'dataset'):
        return image_datasets(dataset.dataset)
    return [dataset]


def find_loader(dataset):
    from mmcv.transforms import LoadImageFromFile
    for transform in getattr(dataset.pipeline, 'transforms', []):
        if isinstance(transform, LoadImageFromFile):
            return transform
    raise SystemExit('error: the pipeline of this dataset loads no image file (no '
                     'LoadImageFromFile-type transform): there is nothing to verify.')


def find_annotation_loader(dataset):
    """The pipeline's ``LoadAnnotations`` when it reads a file per sample (a label map)."""
    from mmcv.transforms import LoadAnnotations
    for transform in getattr(dataset.pipeline, 'transforms', []):
        if isinstance(transform, LoadAnnotations) and transform.with_seg:
            return transform
    return None


def check(index):
    """(image path, why unreadable or None, label map path or None, why unreadable or None)."""
    dataset, loader, ann_loader = _state['dataset'], _state['loader'], _state['ann_loader']
    info = dataset.get_data_info(index)
    image = info.get('img_path', str(index)), unreadable_reason(loader, info)
    if ann_loader is None:
        return image + (None, None)
    return image + (info.get('seg_map_path'), unreadable_annotation_reason(ann_loader, info))


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    loader_cfg = cfg.get(f'{args.split}_dataloader')
    if not loader_cfg:
        sys.exit(f'error: the config has no {args.split}_dataloader.')
    try:
        check_dataset_paths(loader_cfg['dataset'])
    except DatasetNotFoundError as err:
        sys.exit(f'error: {err}')

    if hasattr(sys.stdout, 'reconfigure'):  # names that are no UTF-8: printed as their bytes
        sys.stdout.reconfigure(errors='surrogateescape')
    problems, total, bad_images, bad_labels, labels_checked = [], 0, 0, 0, False
    for dataset in image_datasets(DATASETS.build(loader_cfg['dataset'])):
        _state.update(dataset=dataset, loader=find_loader(dataset),
                      ann_loader=find_annotation_loader(dataset))
        labels_checked |= _state['ann_loader'] is not None
        also = ' and label maps' if _state['ann_loader'] is not None else ''
        print(f'Checking {len(dataset)} images{also} with {_state["loader"]!r}', file=sys.stderr)
        total += len(dataset)
        indices = range(len(dataset))
        if args.workers > 1:
            with get_context('fork').Pool(args.workers) as pool:
                results = list(pool.imap(check, indices, chunksize=64))
        else:
            results = [check(index) for index in indices]
        for img_path, img_reason, label_path, label_reason in results:
            bad_images += img_reason is not None
            bad_labels += label_reason is not None
            problems += [(path, reason) for path, reason in ((img_path, img_reason),
                                                             (label_path, label_reason)) if reason]

    for path, reason in problems:
        print(f'{path}\t{reason}')
    print(f'{bad_images} of {total} images unreadable.', file=sys.stderr)
    if labels_checked:
        print(f'{bad_labels} of {total} label maps unreadable.', file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == '__main__':
    main()
