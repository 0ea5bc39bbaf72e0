"""The embedded demo: a small variant on the bundled clip (`make demo`).

    python -m tools.run_clip --config=configs/demo.py
"""
from configs import default


def get_config():
    config = default.get_config()
    config.model.variant = 'A3B4C16F5'
    config.frames_dir = 'demo_data/clip'
    config.output_dir = 'demo_out'
    return config
