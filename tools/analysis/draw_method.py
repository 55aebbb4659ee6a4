"""Draw the ConMIM method diagram of the README (docs/method.png).

    python tools/analysis/draw_method.py [--out docs/method.png]

Two views of one crop: the student encodes the weak view with a block mask (mask tokens at the
masked patches); the momentum teacher encodes the full, strongly perturbed view. Each masked
patch's prediction must pick its own teacher patch among all patches of the same image
(intra-image, inter-patch InfoNCE); the teacher follows the student by EMA. Needs only
matplotlib (no data, no model), so the picture is reproducible on any checkout.
"""
import argparse
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

STUDENT, TEACHER, LOSS, DATA = '#fde0dd', '#deebf7', '#fff2cc', '#eeeeee'


def box(ax, x, y, w, h, text, color, bold=False):
    from matplotlib.patches import FancyBboxPatch
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle='round,pad=0.02',
                                facecolor=color, edgecolor='#444444', linewidth=1.0))
    ax.text(x, y, text, ha='center', va='center', fontsize=8.5,
            fontweight='bold' if bold else 'normal', wrap=True)
    return dict(left=(x - w / 2, y), right=(x + w / 2, y), top=(x, y + h / 2),
                bottom=(x, y - h / 2))


def arrow(ax, start, end, text=None, dashed=False, text_offset=(0, 0.06)):
    from matplotlib.patches import FancyArrowPatch
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle='-|>', mutation_scale=11,
                                 linewidth=1.1, color='#333333',
                                 linestyle='--' if dashed else '-'))
    if text:
        ax.text((start[0] + end[0]) / 2 + text_offset[0], (start[1] + end[1]) / 2 + text_offset[1],
                text, ha='center', va='center', fontsize=7.5, color='#333333')


def draw(out):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(11, 3.6))
    ax.set_xlim(0, 11)
    ax.set_ylim(0, 3.9)
    ax.axis('off')
    top, bottom = 2.85, 1.0

    image = box(ax, 0.75, (top + bottom) / 2, 1.2, 0.9, 'image\n→ one random\nresized crop + flip',
                DATA)
    weak = box(ax, 2.45, top, 1.5, 0.8, 'weak view\n(the crop)', STUDENT)
    mask = box(ax, 4.1, top, 1.4, 0.8, 'block mask\n~40 % of patches\n→ mask token', STUDENT)
    student = box(ax, 5.85, top, 1.6, 0.8, 'student ViT\n(relative positions,\nno absolute ones)',
                  STUDENT, bold=True)
    s_proj = box(ax, 7.5, top, 1.2, 0.8, 'projector\n(MLP)', STUDENT)
    strong = box(ax, 2.45, bottom, 1.5, 0.9, 'strong view\n(same crop + colour\njitter, blur,\n'
                 'solarize)', TEACHER)
    teacher = box(ax, 5.85, bottom, 1.6, 0.8, 'teacher ViT\nfull view, no gradient', TEACHER,
                  bold=True)
    t_proj = box(ax, 7.5, bottom, 1.2, 0.8, 'projector\n(EMA copy)', TEACHER)
    loss = box(ax, 9.75, (top + bottom) / 2, 2.2, 1.9,
               'intra-image InfoNCE\n\neach masked patch i must\npick teacher patch i among\n'
               'all patches of the same\nimage (τ = 0.1)', LOSS, bold=False)

    arrow(ax, image['right'], weak['left'])
    arrow(ax, image['right'], strong['left'])
    arrow(ax, weak['right'], mask['left'])
    arrow(ax, mask['right'], student['left'])
    arrow(ax, student['right'], s_proj['left'])
    arrow(ax, s_proj['right'], (loss['left'][0], loss['left'][1] + 0.45))
    ax.text(8.15, top + 0.62, 'predictions at the\nmasked patches', fontsize=7.5, va='center')
    arrow(ax, strong['right'], teacher['left'])
    arrow(ax, teacher['right'], t_proj['left'])
    arrow(ax, t_proj['right'], (loss['left'][0], loss['left'][1] - 0.45))
    ax.text(8.15, bottom - 0.62, 'targets: every patch\n(stop-gradient)', fontsize=7.5,
            va='center')
    arrow(ax, student['bottom'], teacher['top'], 'EMA: teacher ← m · teacher\n'
          '+ (1 − m) · student, m: 0.996 → 1', dashed=True, text_offset=(1.25, 0))
    ax.text(5.5, 3.72, 'ConMIM: masked image modeling with denoising contrast (ICLR 2023)',
            ha='center', va='center', fontsize=10, fontweight='bold')
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=osp.join(ROOT, 'docs', 'method.png'))
    print('wrote', draw(parser.parse_args(argv).out))


if __name__ == '__main__':
    main()
