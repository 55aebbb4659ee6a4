# The BEiT-style ViT-B/16 of ConMIM (official modeling_pretrain.py): q/v bias, layer scale 0.1,
# no absolute position embedding, one relative position table shared by all blocks. The one
# architecture dict of this size: the pretraining model (conmim_vit-b-p16.py) and the downstream
# backbone (conmim_vit-b-p16_downstream.py, which expands the shared table to one per block)
# both take it, so a checkpoint of one fits the other; vit-t-p4.py changes the size.
embed_dims = 768
conmim_vit = dict(
    type='ConMIMViT',
    arch='base',
    img_size=224,
    patch_size=16,
    layer_scale_init_value=0.1,
    use_abs_pos_emb=False,
    use_rel_pos_bias=False,
    use_shared_rel_pos_bias=True)
