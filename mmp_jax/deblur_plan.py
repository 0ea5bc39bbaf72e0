"""What a deblur run reads and writes, decided and checked before any work (`plan`): the
inputs (a URL copied into a local scratch folder first, a folder holding videos and no frames
standing for its videos), one output and prior output per input (several inputs go into the
folder `--output`), each checked to differ from its input and from each other and to be free
(or `overwrite`); a URL output is written to a local stand-in and copied to the URL when done
(`publish`). See `mmp_jax.cli.deblur` for the rules as the user reads them.
"""
import dataclasses
import pathlib

from mmp_jax.io import paths, staging
from mmp_jax.io.paths import is_url
from mmp_jax.data.sources import FRAME_SUFFIXES, SourceError, list_videos
from mmp_jax.frame_writers import OutputError, check_distinct, check_output, is_video_path


@dataclasses.dataclass(frozen=True)
class Job:
    """One input and its outputs: as the user named them (`output`, `prior`: paths or URLs) and
    where they are written (`write_output`, `write_prior`: themselves, or a URL's local stand-in)."""
    input: pathlib.Path
    output: str
    prior: str | None
    write_output: str
    write_prior: str | None


def is_frame(name: str) -> bool:
    """Whether the file `name` is a frame (by its suffix): what an output folder holds of ours."""
    return pathlib.PurePath(name).suffix.lower() in FRAME_SUFFIXES


def expand_inputs(inputs: list[str]) -> list[pathlib.Path]:
    """The videos and frame folders to deblur: the paths given, a folder holding videos but no
    frames standing for its videos."""
    paths = []
    for given in map(pathlib.Path, inputs):
        if given.is_dir() and not any(is_frame(p.name) for p in given.iterdir()):
            videos = list_videos(given)
            if videos:
                paths.extend(videos)
                continue
        paths.append(given)
    return paths


def plan_outputs(inputs: list[pathlib.Path], output: str, prior: str | None) -> list[tuple]:
    """(input, output, prior output) per input: one input goes to `output` itself; several go
    into the folder `output`, a video to `<stem>.mp4` (or its own suffix where we write it), a
    frame folder to `<name>/` (priors likewise under `prior`)."""
    if len(inputs) == 1:
        return [(inputs[0], output, prior)]
    if is_video_path(output) or (prior is not None and is_video_path(prior)):
        raise OutputError(f'{output}: {len(inputs)} inputs need an output folder, not a video name')
    plans, names = [], {}
    for path in inputs:
        name = (path.stem + (path.suffix.lower() if is_video_path(path) else '.mp4')
                if path.is_file() else path.name)
        if name in names:
            raise OutputError(f'{path} and {names[name]} would both be written to {name}; deblur them separately')
        names[name] = path
        plans.append((path, _join(output, name), None if prior is None else _join(prior, name)))
    return plans


def _join(folder: str, name: str) -> str:
    """`folder/name`, `folder` a local path or a URL (whose `//` pathlib would fold)."""
    return str(paths.path(folder) / name)


def fetch_input(given: str, scratch: pathlib.Path) -> pathlib.Path:
    """`given` as a local path: itself, or for a URL a copy under the local folder `scratch` (a
    video file, or a folder with the files directly in it; `staging.download`)."""
    if not is_url(given):
        return pathlib.Path(given)
    source, copy = paths.path(given), scratch / paths.path(given).name
    if not source.exists():
        raise SourceError(f'{given}: no such file or folder')
    staging.download(source, copy, marker=False, nested=False)
    return copy


def _given(path: pathlib.Path, fetched: dict[pathlib.Path, str]) -> str | pathlib.Path:
    """The input `path` as the user named it: the URL of a copy `fetch_input` made (or of a
    video in a copied folder), else `path`."""
    for copy, url in fetched.items():
        if path == copy:
            return url
        if path.parent == copy:
            return _join(url, path.name)
    return path


def plan(inputs: list[str], output: str, prior: str | None, overwrite: bool, scratch: pathlib.Path) -> list[Job]:
    """The jobs of a run, every output checked (`check_distinct`, `check_output`) before any is
    written; URL inputs copied under `scratch`, URL outputs given stand-ins there."""
    local = [fetch_input(given, scratch / 'inputs' / str(i)) for i, given in enumerate(inputs)]
    fetched = {path: given for path, given in zip(local, inputs) if is_url(given)}
    staged = {}  # URL output: its local stand-in
    planned = plan_outputs(expand_inputs([str(path) for path in local]), output, prior)
    for path, out, prior_out in planned:
        check_distinct(_given(path, fetched), {'--output': out, '--prior': prior_out})
        for target in filter(None, (out, prior_out)):
            check_output(paths.path(target) if is_url(target) else pathlib.Path(target).absolute(), overwrite)
            if is_url(target):
                staged[target] = scratch / 'outputs' / str(len(staged)) / paths.path(target).name
    return [Job(path, out, prior_out, str(staged.get(out, out)),
                None if prior_out is None else str(staged.get(prior_out, prior_out)))
            for path, out, prior_out in planned]


def publish(job: Job) -> None:
    """Copies a finished job's staged outputs (a video, or a folder of frames) to their URLs
    (nothing for local outputs), each file whole (`staging.upload`): a video replaces the one
    there; an existing folder keeps everything but its frames (those not written again removed);
    a new folder not copied to the end is removed."""
    for target, written in ((job.output, job.write_output), (job.prior, job.write_prior)):
        if target is not None and written != target:
            staging.upload(written, paths.path(target), marker=False, stale=is_frame)
