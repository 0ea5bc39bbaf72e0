"""The command-line programs: installed as console scripts (setup.cfg: mmp-convert, mmp-deblur,
mmp-export, mmp-score, mmp-stats), and run from a checkout as `python -m tools.<name>`."""
