"""Training curves of one or more runs, from their logs, in one PNG.

Reads ``<work_dir>/<timestamp>/vis_data/scalars.json`` (the newest) of each run and plots, per
run, the pretraining loss, the masked-patch match (``acc_patch``) and the kNN monitor
(``knn/teacher_top1`` or ``knn/top1``) against the iteration:

    python tools/analysis/plot_curves.py work_dirs/conmim_vit-t-p4_fashion-mnist --out curves.png
    python tools/analysis/plot_curves.py RUN_A RUN_B --labels "lr 1e-3" "lr 3e-4" --out ab.png

A line ``--chance`` (default: ln of the number of patches, read from the logs' first loss if
not given) marks where the InfoNCE starts.
"""
import argparse
import glob
import json
import math
import os
import os.path as osp

METRICS = (('loss', 'InfoNCE loss'), ('acc_patch', 'masked-patch match (%)'),
           ('knn', 'kNN top-1 (%), validation split'))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+', help='run directories (tools/train.py --work-dir)')
    parser.add_argument('--labels', nargs='+', help='one legend label per run (default: names)')
    parser.add_argument('--out', required=True, help='PNG to write')
    parser.add_argument('--patches', type=int, default=None,
                        help='patches per image: draws the chance lines (ln L, 100/L %%)')
    parser.add_argument('--title', default=None)
    return parser.parse_args(argv)


def read_scalars(work_dir):
    """The records of every ``vis_data/scalars.json`` under ``work_dir``, oldest first: a
    resumed run writes a new one, and its records replace those of the same iterations."""
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not logs:
        raise SystemExit(f'{work_dir} has no */vis_data/scalars.json: is it a tools/train.py '
                         'work dir, and did the run log at least one iteration?')
    records = []
    for log in logs:
        with open(log) as f:
            new = [json.loads(line) for line in f if line.strip()]
        if new:  # a resumed run starts again from its checkpoint's iteration
            first = min(rec.get('step', 0) for rec in new)
            records = [rec for rec in records if rec.get('step', 0) < first]
        records += new
    return records


def curves(records):
    """{metric: [(iteration, value), ...]} of one run."""
    out = {name: [] for name, _ in METRICS}
    for rec in records:
        step = rec.get('step', rec.get('iter'))
        if 'loss' in rec:
            out['loss'].append((step, rec['loss']))
        if 'acc_patch' in rec:
            out['acc_patch'].append((step, 100 * rec['acc_patch']))
        for key in ('knn/teacher_top1', 'knn/top1'):
            if key in rec:
                out['knn'].append((step, rec[key]))
    return out


def main(argv=None):
    args = parse_args(argv)
    if args.labels and len(args.labels) != len(args.work_dirs):
        raise SystemExit(f'--labels gives {len(args.labels)} labels for '
                         f'{len(args.work_dirs)} runs.')
    labels = args.labels or [osp.basename(osp.normpath(d)) for d in args.work_dirs]
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.3 * len(METRICS), 3.4))
    for work_dir, label in zip(args.work_dirs, labels):
        data = curves(read_scalars(work_dir))
        for ax, (name, _) in zip(axes, METRICS):
            if data[name]:
                xs, ys = zip(*data[name])
                ax.plot(xs, ys, marker='o' if name == 'knn' else None, markersize=3,
                        label=label)
    for ax, (name, title) in zip(axes, METRICS):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
        if args.patches and name in ('loss', 'acc_patch'):
            ax.axhline(math.log(args.patches) if name == 'loss' else 100 / args.patches,
                       color='grey', linestyle=':', linewidth=1, label='chance')
    axes[0].legend(fontsize=8)
    if args.title:
        fig.suptitle(args.title, fontsize=11)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print('wrote', args.out)


if __name__ == '__main__':
    main()
