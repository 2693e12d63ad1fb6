"""Networks: backbones (ViT, I-JEPA), heads (MLP, transformer decoder, vocabulary scorer), temporal fusion, perception heads."""
