"""The GPT example end to end on a small text file with a one-layer model: output, jit against eager,
resuming, and the errors it must refuse with one line."""
import contextlib
import io

import numpy as np
import pytest

from fusegrad.examples import gpt

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n\n") * 8
PROMPT = "All:\nSp"  # 7 characters: sampling without the cache runs windows of 7 and 8 tokens only
SMALL = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "4",
         "--lr", "1e-2", "--warmup", "2", "--eval-interval", "3", "--eval-iters", "2", "--dropout", "0.1",
         "--prompt", PROMPT, "--max-new-tokens", "3", "--seed", "5"]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "citizens.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def full_run(text_file, tmp_path_factory):
    """Six jitted steps, checkpointed at steps 3 and 6, with TensorBoard logs; its output captured."""
    folder = tmp_path_factory.mktemp("full")
    args = ["--text", str(text_file), *SMALL, "--steps", "6", "--checkpoint", str(folder / "ckpt.safetensors"),
            "--tensorboard", str(folder / "tb"), "--profile"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run = gpt.train(gpt.parse_args(args))
    return run, out.getvalue(), folder


def test_prints_evals_summary_and_sample(full_run):
    run, out, folder = full_run
    assert len(run.losses) == 6 and all(np.isfinite(run.losses))
    assert [step for step, _ in run.val_losses] == [3, 6]
    assert "step 3: train loss" in out and "step 6: train loss" in out
    assert "6 steps: train loss" in out and "tokens/s, wall time" in out
    assert "kernel profile of the training loop:" in out and "launches of" in out
    assert "---- sample (3 characters, temperature 0.8) ----" in out
    assert run.sample.startswith(PROMPT) and len(run.sample) == len(PROMPT) + 3
    assert (folder / "ckpt.safetensors").exists()
    assert any(p.name.startswith("events.out.tfevents") for p in (folder / "tb").iterdir())


def test_jit_and_eager_losses_agree(full_run, text_file):
    eager = gpt.train(gpt.parse_args(["--text", str(text_file), *SMALL, "--steps", "6", "--no-jit"]))
    np.testing.assert_allclose(eager.losses, full_run[0].losses, rtol=1e-4)
    np.testing.assert_allclose([v for _, v in eager.val_losses], [v for _, v in full_run[0].val_losses], rtol=1e-4)


def test_resume_continues_exactly(full_run, text_file, tmp_path):
    """3 steps, then a resume to 6, equal 6 steps in one go: losses, dropout masks, data and the sample."""
    ckpt = str(tmp_path / "half.safetensors")
    base = ["--text", str(text_file), *SMALL, "--decay-steps", "6", "--checkpoint", ckpt]
    first = gpt.train(gpt.parse_args(base + ["--steps", "3"]))
    second = gpt.train(gpt.parse_args(base + ["--steps", "6", "--resume", ckpt]))
    np.testing.assert_allclose(first.losses + second.losses, full_run[0].losses, rtol=1e-6)
    assert second.sample == full_run[0].sample


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_autocast_runs_track_float32_and_resume_exactly(full_run, text_file, tmp_path, dtype):
    """--autocast trains close to float32 (the same data and dropout; the products rounded to the half
    type); float16's loss scaler is part of the checkpoint, so a resumed run continues exactly."""
    ckpt = str(tmp_path / "amp.safetensors")
    base = ["--text", str(text_file), *SMALL, "--autocast", dtype, "--checkpoint", ckpt]
    whole = gpt.train(gpt.parse_args(base + ["--steps", "6"]))
    np.testing.assert_allclose(whole.losses, full_run[0].losses, rtol=0.03)
    assert whole.losses != full_run[0].losses  # the products did run in the half type
    first = gpt.train(gpt.parse_args(base + ["--steps", "3", "--decay-steps", "6"]))
    second = gpt.train(gpt.parse_args(base + ["--steps", "6", "--resume", ckpt]))
    np.testing.assert_allclose(first.losses + second.losses, whole.losses, rtol=1e-6)
    assert second.sample == whole.sample


def test_sample_only_from_checkpoint_with_and_without_cache(full_run, text_file, capsys):
    """The cached step and the whole window draw the same characters; the sample after training is the
    same too, as the checkpoint holds the random stream of the end of the run."""
    argv = ["--text", str(text_file), *SMALL, "--resume", str(full_run[2] / "ckpt.safetensors"), "--sample-only"]
    cached = gpt.train(gpt.parse_args(argv))
    out = capsys.readouterr().out
    assert "---- sample" in out and "steps: train loss" not in out
    assert gpt.train(gpt.parse_args(argv + ["--no-kv-cache"])).sample == cached.sample == full_run[0].sample


@pytest.mark.parametrize("change, message", [
    (["--n-embd", "32"], "n_embd 16 != 32"),
    (["--no-bias"], "bias True != False"),
    (["--text-suffix"], "vocabulary of"),
], ids=["width", "bias", "vocabulary"])
def test_mismatched_checkpoint_is_refused(full_run, text_file, tmp_path, capsys, change, message):
    text = str(text_file)
    if change == ["--text-suffix"]:  # another text: a new character changes the vocabulary
        other = tmp_path / "other.txt"
        other.write_text(TEXT + "Zounds!\n", encoding="utf-8")
        text, change = str(other), []
    argv = ["--text", text, *SMALL, *change, "--resume", str(full_run[2] / "ckpt.safetensors"), "--sample-only"]
    assert gpt.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: checkpoint") and message in err[0], err


def test_prompt_outside_vocabulary_is_refused(full_run, text_file, capsys):
    argv = ["--text", str(text_file), *SMALL, "--resume", str(full_run[2] / "ckpt.safetensors"), "--sample-only",
            "--prompt", "Hail, Caesar"]
    assert gpt.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'H' is not in the citizens.txt vocabulary" in err[0], err


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--config", "huge"], ["--lr", "-1"], ["--dropout", "1"],
                                  ["--sample-only"], ["--top-k", "-2"], ["--autocast", "float64"]],
                         ids=["steps", "config", "lr", "dropout", "sample-only-alone", "top-k", "autocast"])
def test_bad_arguments_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as e:
        gpt.main(argv)
    assert e.value.code != 0
    assert "Traceback" not in capsys.readouterr().err


def test_builtin_progress_bar_writes_lines_above_itself(capsys):
    """Without tqdm the examples' own bar serves: a written line goes to stdout, the bar stays on stderr."""
    from fusegrad.examples.progress import _Bar
    bar = _Bar(range(3), total=3, desc="training")
    for i in bar:
        bar.set_postfix(loss=f"{i:.1f}")
        if i == 1:
            bar.write("step 2: val loss 1.0")
    captured = capsys.readouterr()
    assert captured.out == "step 2: val loss 1.0\n"
    assert "training" in captured.err and "3/3" in captured.err and "loss=" in captured.err


def test_opencl_device_trains_like_the_cpu(full_run, text_file):
    from fusegrad.runtime import registry
    if "opencl" not in registry.available():
        pytest.skip(f"no OpenCL device: {registry.unavailable().get('opencl')}")
    run = gpt.train(gpt.parse_args(["--text", str(text_file), *SMALL, "--steps", "3", "--decay-steps", "6",
                                    "--device", "opencl"]))
    np.testing.assert_allclose(run.losses, full_run[0].losses[:3], rtol=1e-4)
