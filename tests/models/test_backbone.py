import pytest
import torch
from mmpretrain.models import BEiTViT
from mmpretrain.models.utils import BEiTAttention

from conmim_mm.models import ConMIMViT
from conmim_mm.models.utils.relative_position import (relative_position_bias,
                                                     relative_position_index)
from tests.helpers.tiny_models import TINY_VIT as TINY


def test_sdpa_attention_equals_mmpretrain_explicit_attention():
    torch.manual_seed(0)
    vit = ConMIMViT(arch=TINY, img_size=32, patch_size=8, use_rel_pos_bias=True)
    vit.init_weights()
    attn = vit.layers[0].attn
    reference = BEiTAttention(32, 4, window_size=(4, 4), use_rel_pos_bias=True)
    reference.load_state_dict(attn.state_dict())
    torch.nn.init.normal_(attn.relative_position_bias_table)
    reference.relative_position_bias_table.data.copy_(attn.relative_position_bias_table)
    x = torch.randn(2, 17, 32)
    torch.testing.assert_close(attn(x), reference(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('grid', [(4, 4), (3, 5), (1, 1), (14, 14)])
def test_relative_position_bias_matches_beit_index(grid):
    """The bias and its gradient are mmpretrain BEiTAttention's table read at its own index."""
    reference = BEiTAttention(8, 2, window_size=grid, use_rel_pos_bias=True)
    index = reference.relative_position_index
    assert torch.equal(relative_position_index(grid), index)
    table = torch.randn(reference.relative_position_bias_table.shape, requires_grad=True)
    weights = torch.randn(2, grid[0] * grid[1] + 1, grid[0] * grid[1] + 1)
    ours = relative_position_bias(table, grid, grid)
    n = grid[0] * grid[1] + 1
    expected = table[index.view(-1)].view(n, n, -1).permute(2, 0, 1)
    assert torch.equal(ours, expected) and ours.is_contiguous()
    ours_grad, = torch.autograd.grad((ours * weights).sum(), table)
    expected_grad, = torch.autograd.grad((expected * weights).sum(), table)
    torch.testing.assert_close(ours_grad, expected_grad)


def test_forward_any_multiple_of_the_patch_size():
    vit = ConMIMViT(arch=TINY, img_size=32, patch_size=8, out_type='featmap',
                    use_rel_pos_bias=False, use_shared_rel_pos_bias=True)
    vit.init_weights()
    assert vit(torch.randn(1, 3, 32, 32))[0].shape == (1, 32, 4, 4)
    assert vit(torch.randn(1, 3, 48, 64))[0].shape == (1, 32, 6, 8)
    with pytest.raises(ValueError, match='30x32 image.*patch size 8'):
        vit(torch.randn(1, 3, 30, 32))


def test_patch_size_is_free():
    vit = ConMIMViT(arch=TINY, img_size=28, patch_size=4, out_type='raw')
    assert vit(torch.randn(2, 3, 28, 28))[0].shape == (2, 50, 32)


def test_mask_replaces_masked_patch_embeddings_only():
    torch.manual_seed(0)
    vit = ConMIMViT(arch=dict(TINY, num_layers=1), img_size=16, patch_size=8, out_type='raw')
    vit.init_weights()
    x = torch.randn(1, 3, 16, 16)
    mask = torch.tensor([[[1, 0], [0, 0]]])
    other = x.clone()
    other[..., :8, :8] = torch.randn(3, 8, 8)  # change only the masked patch's pixels
    torch.testing.assert_close(vit(x, mask)[0], vit(other, mask)[0])
    assert not torch.allclose(vit(x)[0], vit(other)[0])
    with pytest.raises(ValueError, match='mask has 9 patches'):
        vit(x, torch.zeros(1, 3, 3))


@pytest.mark.parametrize('kwargs', [
    dict(),  # per-layer tables on the patch grid
    dict(use_rel_pos_bias=False, use_shared_rel_pos_bias=True),
    dict(layer_cfgs=[dict(attn_cfg=dict(window_size=(2, 2))), dict(window_size=(3, 1)),
                     dict(use_rel_pos_bias=False)]),
    dict(use_rel_pos_bias=False, layer_cfgs=dict(attn_cfg=dict(use_rel_pos_bias=True))),
])
def test_layers_have_the_tables_and_buffers_of_mmpretrain_beitvit(kwargs):
    """ConMIMViT builds BEiTViT's attention without tables and gives them to its own
    attention: the same state (names, shapes, index buffers) as BEiTViT from the same args."""
    arch = dict(TINY, num_layers=3)
    ours = ConMIMViT(arch=arch, img_size=32, patch_size=8, with_mask_token=False, **kwargs)
    stock = BEiTViT(arch=arch, img_size=32, patch_size=8, **kwargs)
    ours_state, stock_state = ours.state_dict(), stock.state_dict()
    assert {k: v.shape for k, v in ours_state.items()} == \
        {k: v.shape for k, v in stock_state.items()}
    for key in ours_state:
        if key.endswith('relative_position_index'):
            assert torch.equal(ours_state[key], stock_state[key]), key
    for mine, theirs in zip(ours.layers, stock.layers):
        assert mine.attn.window_size == theirs.attn.window_size


def test_state_dict_loads_into_mmpretrain_beitvit():
    ours = ConMIMViT(arch='deit-tiny', img_size=32, patch_size=16, use_rel_pos_bias=False,
                     use_shared_rel_pos_bias=True, out_type='avg_featmap')
    ours.init_weights()
    stock = BEiTViT(arch='deit-tiny', img_size=32, patch_size=16, use_rel_pos_bias=True,
                    out_type='avg_featmap')
    result = stock.load_state_dict(ours.state_dict(), strict=False)
    # only the per-layer index buffers, which BEiTViT computes itself
    assert all(k.endswith('relative_position_index') for k in result.missing_keys)
    assert result.unexpected_keys == ['mask_token']
    stock.eval(), ours.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], stock(x)[0], atol=1e-5, rtol=1e-4)


def test_beit_init_rescales_residual_projections():
    torch.manual_seed(0)
    vit = ConMIMViT(arch=dict(TINY, num_layers=4, embed_dims=256), img_size=16, patch_size=8)
    vit.init_weights()
    stds = [layer.attn.proj.weight.std().item() for layer in vit.layers]
    for depth, std in enumerate(stds, start=1):  # N(0, .02) cut at +-.02: std 0.54 x .02
        assert std == pytest.approx(0.5396 * 0.02 / (2 * depth) ** 0.5, rel=0.1)
    for layer in vit.layers:  # the FFN too (mmpretrain's layer would re-draw it with Xavier)
        assert layer.ffn.layers[0][0].weight.abs().max() <= 0.02
    assert vit.mask_token.abs().sum() > 0


@pytest.mark.parametrize('arch,width,depth,heads', [('small', 384, 12, 6), ('base', 768, 12, 12),
                                                     ('large', 1024, 24, 16)])
def test_arch_names_follow_the_paper(arch, width, depth, heads):
    settings = ConMIMViT.arch_zoo[arch]
    assert (settings['embed_dims'], settings['num_layers'], settings['num_heads']) == \
        (width, depth, heads)


def test_frozen_stages_freeze_the_attention_too():
    vit = ConMIMViT(arch=TINY, img_size=16, patch_size=8, frozen_stages=2, with_mask_token=False)
    assert not any(p.requires_grad for p in vit.layers.parameters())
    assert not vit.patch_embed.projection.weight.requires_grad


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = ConMIMViT(arch=TINY, img_size=16, patch_size=8, out_type='raw',
                      use_rel_pos_bias=True)
    plain.init_weights()
    ckpt = ConMIMViT(arch=TINY, img_size=16, patch_size=8, out_type='raw',
                     use_rel_pos_bias=True, use_checkpoint=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 24, 16)  # another grid than the tables' window
    plain(x)[0].square().sum().backward()
    ckpt(x)[0].square().sum().backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name, atol=1e-6, rtol=1e-5)


def test_relative_position_index_is_cached_per_device():
    """A GPU forward must find the index on its device, not copy it from the host each layer
    (such a copy waits for the GPU); the 'meta' device stands in for a GPU here."""
    from conmim_mm.models.utils.relative_position import relative_position_index
    host = relative_position_index((3, 4))
    assert relative_position_index((3, 4), torch.device('cpu')).equal(host)
    on_device = relative_position_index((3, 4), torch.device('meta'))
    assert on_device.device.type == 'meta' and on_device.shape == host.shape
    assert relative_position_index((3, 4), torch.device('meta')) is on_device


def test_backbone_and_projector_compile_without_graph_breaks():
    """torch.compile must see one graph (a numpy drop-path rate once split every block)."""
    from mmpretrain.registry import MODELS
    backbone = MODELS.build(dict(
        type='ConMIMViT', arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                                    feedforward_channels=64),
        img_size=32, patch_size=8, out_type='raw', final_norm=True, drop_path_rate=0.1,
        layer_scale_init_value=0.1, use_abs_pos_emb=False, use_rel_pos_bias=False,
        use_shared_rel_pos_bias=True))
    backbone.train()  # (BEiTViT.train returns None: no chaining)
    images, mask = torch.randn(2, 3, 32, 32), torch.zeros(2, 16, dtype=torch.bool)
    mask[:, :6] = True
    torch._dynamo.reset()
    assert torch._dynamo.explain(backbone)(images, mask).graph_break_count == 0
    assert torch._dynamo.explain(backbone)(images, None).graph_break_count == 0
    neck = MODELS.build(dict(type='NonLinearNeck', in_channels=32, hid_channels=64,
                             out_channels=16, num_layers=3, with_bias=False, with_last_bn=True,
                             with_last_bn_affine=False, with_avg_pool=False,
                             norm_cfg=dict(type='BN1d'))).train()
    assert torch._dynamo.explain(neck)((torch.randn(34, 32), )).graph_break_count == 0
