// placeholder until code lands
