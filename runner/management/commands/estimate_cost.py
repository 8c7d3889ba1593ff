"""Print the per-layer hardware-cost table of a registry model or checkpoint, or measure this machine's profile.

    ./lab manage estimate_cost resnet20 --dataset cifar10 --bits 4,8 --layer-bits fc=8,8 --profile jetson-orin
    ./lab manage estimate_cost mlp --input-shape 1,8,8 --json
    ./lab manage estimate_cost --checkpoint data/artifacts/12/checkpoint.pt --profile fpga-int
    ./lab manage estimate_cost --calibrate [--device cuda]      # saves the measured profile "local"
"""
from __future__ import annotations

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from runner import costs
from runner.engine import cost
from runner.engine.reporter import NullReporter


def _pair(text: str, what: str) -> list[int]:
    try:
        w, a = (int(x) for x in text.split(","))
    except ValueError:
        raise CommandError(f"{what}: write W,A, e.g. 8,8 (got {text!r})") from None
    return [w, a]


class Command(BaseCommand):
    help = "Print MACs, BOPs, memory traffic, roofline latency and energy per layer (or --calibrate this machine)."

    def add_arguments(self, parser):
        parser.add_argument("model", nargs="?", help="registry model name")
        parser.add_argument("--dataset", help="dataset whose input shape to use (default digits)")
        parser.add_argument("--input-shape", help="one sample's shape, e.g. 3,32,32 (instead of --dataset)")
        parser.add_argument("--num-classes", type=int)
        parser.add_argument("--checkpoint", help="an engine checkpoint file (its architecture and weights)")
        parser.add_argument("--bits", default="32,32", help="default W,A bit widths (default 32,32)")
        parser.add_argument("--layer-bits", action="append", default=[], metavar="NAME=W,A",
                            help="bit widths for a layer name or glob; repeatable")
        parser.add_argument("--profile", default="a100", help="device profile name (see /cost/profiles/)")
        parser.add_argument("--batch-size", type=int, default=1)
        parser.add_argument("--json", action="store_true", help="print the full report as JSON")
        parser.add_argument("--calibrate", action="store_true", help="measure this machine and save the profile")
        parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
        parser.add_argument("--save-as", default="local", help="profile name for --calibrate (default local)")

    def handle(self, *args, **opts):
        if opts["calibrate"]:
            return self._calibrate(opts)
        default_bits = _pair(opts["bits"], "--bits")
        layer_bits = {}
        for item in opts["layer_bits"]:
            name, sep, pair = item.rpartition("=")
            if not sep or not name:
                raise CommandError(f"--layer-bits: write NAME=W,A (got {item!r})")
            layer_bits[name] = _pair(pair, "--layer-bits")
        try:
            if opts["checkpoint"]:
                report = self._from_checkpoint(opts, default_bits, layer_bits)
            else:
                if not opts["model"]:
                    raise CommandError("give a model name, --checkpoint or --calibrate")
                shape = None
                if opts["input_shape"]:
                    try:
                        shape = [int(s) for s in opts["input_shape"].split(",")]
                    except ValueError:
                        raise CommandError("--input-shape: comma-separated integers, e.g. 3,32,32") from None
                report = costs.cost_estimate_spec(
                    model=opts["model"], dataset=None if shape else (opts["dataset"] or "digits"), input_shape=shape,
                    num_classes=opts["num_classes"], bits={"default": default_bits, "layers": layer_bits},
                    profile=opts["profile"], batch_size=opts["batch_size"])
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(report, indent=1, default=str) if opts["json"] else cost.format_table(report))

    def _from_checkpoint(self, opts, default_bits, layer_bits) -> dict:
        from runner.engine.cost_jobs import model_and_input

        path = Path(opts["checkpoint"])
        if not path.is_file():
            raise CommandError(f"--checkpoint: no such file {path}")
        model, shape, _ = model_and_input({"checkpoint": str(path)})
        return cost.estimate(model, shape, bits={k: tuple(v) for k, v in layer_bits.items()},
                             default_bits=tuple(default_bits), batch_size=opts["batch_size"],
                             profile=costs.device_profile_engine(opts["profile"]))

    def _calibrate(self, opts) -> None:
        import tempfile

        from runner.engine.cost_jobs import calibrate_job

        with tempfile.TemporaryDirectory() as tmp:
            result = calibrate_job({"device": opts["device"], "hyperparameters": {"name": opts["save_as"]}},
                                   Path(tmp), NullReporter())
        row = costs.device_profile_save_measured(profile=result["profile"], name=opts["save_as"])
        peaks = ", ".join(f"{k} {cost.fmt_si(v, 'OP/s')}" for k, v in row.peak_ops.items())
        self.stdout.write(f"saved profile {row.name!r} ({row.label}): {peaks}; bandwidth "
                          f"{cost.fmt_si(row.bandwidth, 'B/s')}")
