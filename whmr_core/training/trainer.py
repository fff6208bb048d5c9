"""The three-stage trainer: one process (CPU or GPU) or many (torchrun + DDP), mixed precision on GPU,
atomic resumable checkpoints, TensorBoard logs and per-epoch validation.

Layout of ``out_dir``::

    stage{k}/last/    latest checkpoint of stage k (weights + optimizer + step + RNG), written atomically
    stage{k}/final/   the stage's result; stage k+1 starts from it
    initial/          the untrained network (the baseline of the evaluation)
    model/            the final network (weights only, fp16)
    tb/               TensorBoard event files
    metrics.json      validation metrics per stage and epoch

Resuming (``--resume``) continues the first unfinished stage from its ``last`` checkpoint at the same step:
the batch order and augmentations depend only on (seed, stage, epoch, index), and RNG states are restored.
Stage k > 1 starts from ``stage{k-1}/final``; without it the run is refused rather than silently started
from an untrained network, unless ``init_from`` names another run's checkpoint: its weights start the run
where names and shapes match (new parameters, e.g. a tuned FPN's deltas, keep their initialisation), and
the first stage run needs no earlier stage of its own.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from whmr_core.checkpoint import CheckpointError, load_checkpoint, recover_checkpoint, save_checkpoint
from whmr_core.config_io import ConfigError
from whmr_core.data.annotations import AnnotationError
from whmr_core.data.batch import collate as _collate
from whmr_core.data.batch import network_crops
from whmr_core.evaluation import CropAdapter, evaluate
from whmr_core.training.batch import Batch
from whmr_core.training.config import StageConfig, TrainConfig
from whmr_core.training.objective import LABEL_NAMES, LOSS_LABELS, PRIORS, compute_losses, stage_terms
from whmr_core.training.stages import StageRules, configure_stage, stage_rules

__all__ = [
    "ResumableSampler",
    "Trainer",
    "build_datasets",
    "build_network",
    "init_from_checkpoint",
    "lr_factor",
    "parse_device",
]

log = logging.getLogger(__name__)


class ResumableSampler(Sampler[int]):
    """A seeded permutation per epoch, split across ranks, that can start mid-epoch at a batch offset."""

    def __init__(
        self,
        size: int,
        seed: int,
        *,
        rank: int = 0,
        world: int = 1,
        shuffle: bool = True,
        order: Callable[[int, int], list[int]] | None = None,
    ) -> None:
        self.size, self.seed, self.rank, self.world, self.shuffle = size, seed, rank, world, shuffle
        self.order = order  # (seed, epoch) -> the epoch's indices (a mix's draws); None: a permutation
        self.epoch = 0
        self.start = 0  # samples of this rank already consumed in the current epoch

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _order(self) -> list[int]:
        if self.order is not None:
            order = self.order(self.seed, self.epoch)
        elif not self.shuffle:
            order = list(range(self.size))
        else:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        per_rank = self.size // self.world  # equal shares so ranks step together
        return order[self.rank * per_rank : (self.rank + 1) * per_rank]

    def __iter__(self) -> Iterator[int]:
        return iter(self._order()[self.start :])

    def __len__(self) -> int:
        return self.size // self.world - self.start


def lr_factor(step: int, total: int, schedule: str, warmup_steps: int = 0) -> float:
    """Multiplier of a stage's base learning rate at optimiser step ``step`` (0-based) of ``total``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "cosine":
        span = max(total - warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup_steps, span) / span))
    return 1.0


def parse_device(device: str | None, local_rank: int = 0, world: int = 1) -> torch.device:
    """``cpu``, ``cuda`` (this process's GPU: ``cuda:LOCAL_RANK``) or ``cuda:N`` (one process), or None: cuda
    if there is one. Anything else is a ConfigError naming the choices."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    kind, colon, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (colon and not index.isdigit()) or (kind == "cpu" and colon):
        raise ConfigError(f"--device: expected cpu, cuda or cuda:N, got {device!r}")
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine")
    if index and world > 1:
        raise ConfigError(
            f"--device {device}: with {world} processes each takes its own GPU; use --device cuda"
        )
    n = int(index) if index else local_rank
    if n >= torch.cuda.device_count():
        raise ConfigError(f"--device {device}: GPU {n} does not exist ({torch.cuda.device_count()} found)")
    return torch.device("cuda", n)


def _end_with_launcher() -> None:
    """Ask Linux to stop this worker when its launcher (torchrun) dies, however it dies (SIGKILL included):
    an orphaned rank would hold its GPU and wait forever on the others."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM))
    if os.getppid() == 1:  # the launcher died before the call
        os.kill(os.getpid(), signal.SIGTERM)


def init_from_checkpoint(model: torch.nn.Module, path: str | Path) -> tuple[list[str], list[str]]:
    """Copy a checkpoint's weights into ``model`` where names and shapes match (``init_from``). Entries the
    model has and the checkpoint lacks keep their initialisation; entries only the checkpoint has are left
    out; both are logged. A name both hold with different shapes is refused, naming them.
    Returns (new names, unused names)."""
    from whmr_core.checkpoint import load_weights

    weights, _ = load_weights(path)
    own = model.state_dict()
    shared = [k for k in own if k in weights]
    clash = [
        f"{k} {tuple(weights[k].shape)} vs {tuple(own[k].shape)}"
        for k in shared
        if weights[k].shape != own[k].shape
    ]
    if clash:
        raise CheckpointError(
            f"init_from {path}: {len(clash)} weights have other shapes than this network's (checkpoint vs "
            f"network): {_first(clash, 8, '; ')}"
        )
    if not shared:
        raise CheckpointError(f"init_from {path}: no weight of it has a name this network has")
    new = [k for k in own if k not in weights]
    unused = [k for k in weights if k not in own]
    model.load_state_dict({k: weights[k].to(own[k].dtype) for k in shared}, strict=False)
    log.info("init_from %s: %d of the network's %d weights loaded", path, len(shared), len(own))
    if new:
        log.info("init_from: %d new (kept as initialised): %s", len(new), _first(new, 6))
    if unused:
        log.warning(
            "init_from: %d of the checkpoint's weights are not in this network: %s",
            len(unused),
            _first(unused, 6),
        )
    return new, unused


def _first(names: list[str], n: int, sep: str = ", ") -> str:
    """The first ``n`` of ``names`` joined, with " ..." where there are more (for messages)."""
    return sep.join(names[:n]) + (" ..." if len(names) > n else "")


def build_network(cfg: TrainConfig) -> torch.nn.Module:
    from whmr_core.body import resolve
    from whmr_core.model import build_model

    body = resolve(cfg.body).load()
    return build_model(cfg.model, body=body)


def build_datasets(cfg: TrainConfig, crop_res: int) -> tuple[Any, list[tuple[Any, Any]]]:
    """The training set (one ``HumanDataset``, or a ``MixedDataset`` of ``data.mix``) and the validation
    sets as (``ValSet``, dataset) pairs."""
    from whmr_core.data.augment import AugmentConfig
    from whmr_core.data.dataset import HumanDataset
    from whmr_core.data.mixing import MixedDataset

    d = cfg.data

    def training(name: str, file: str, images: str, ignore: tuple[str, ...]) -> HumanDataset:
        if not file or not Path(file).exists():
            raise FileNotFoundError(f"{name}: annotation file not found: {file or '(not set)'}")
        tars = Path(file).suffix == ".tar" or Path(file).is_dir()  # tars, HuMMan: images inside
        if not tars and (not images or not Path(images).is_dir()):
            raise FileNotFoundError(f"{name}: image folder not found: {images or '(not set)'}")
        return HumanDataset(
            file,
            images or file,
            crop_res=crop_res,
            augment=AugmentConfig() if d.augment else None,
            seed=cfg.seed,
            with_maps=d.maps,
            skip_bad=True,
            extra_ignored=(*d.ignore_fields, *ignore),
            body=cfg.body,
        )

    if d.mix:
        sets = [training(f"data.mix {m.name}", m.train, m.images, m.ignore_fields) for m in d.mix]
        size = d.epoch_size or sum(len(s) for s in sets)
        train: Any = MixedDataset(sets, [m.name for m in d.mix], [m.ratio for m in d.mix], size)
    else:
        train = training("data.train", d.train, d.train_images, ())
    vals = []
    for v in d.validation_sets():
        if not Path(v.file).exists():
            raise FileNotFoundError(f"validation {v.name}: annotation file not found: {v.file}")
        ds: Any = HumanDataset(
            v.file,
            v.images or Path(v.file).parent,
            crop_res=crop_res,
            augment=None,
            extra_ignored=d.ignore_fields,
        )
        if v.max_samples is not None and len(ds) > v.max_samples:
            ds = torch.utils.data.Subset(ds, range(v.max_samples))
        vals.append((v, ds))
    return train, vals


@dataclass
class _StageRun:
    """Everything one stage's loop carries: rules, optimiser state and the position (step, epoch)."""

    stage: int
    config: StageConfig
    rules: StageRules
    names: list[str]
    params: list[torch.nn.Parameter]
    net: Any  # the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    amp_dtype: torch.dtype | None  # None: no autocast
    sampler: ResumableSampler
    steps_per_epoch: int
    total: int
    step: int = 0
    epoch: int = 0
    skipped: int = 0  # steps whose loss was not finite (on any rank), left out


class Trainer:
    def __init__(self, cfg: TrainConfig, out_dir: str | Path, *, device: str | None = None) -> None:
        self.cfg = cfg
        self.out = Path(out_dir)
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = parse_device(device, self.local_rank, self.world)
        if self.world > 1:
            _end_with_launcher()
            if not torch.distributed.is_initialized():
                torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        if cfg.sync_batchnorm and self.world > 1 and self.device.type != "cuda":
            raise ConfigError(
                "sync_batchnorm: torch's SyncBatchNorm works on GPUs only (this run is on the CPU)"
            )
        self.model = build_network(cfg)
        if cfg.sync_batchnorm and self.world > 1:
            # One set of BatchNorm statistics over all ranks' samples (the per-rank batch is small).
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.model = self.model.to(self.device)
        self.train_set, self.val_sets = build_datasets(cfg, max(self.model.crop_hw))
        self.is_main = self.rank == 0
        # What the training loader reads: the training set, or its frozen-backbone maps (feature cache).
        self.train_items: Any = self._feature_cache() if cfg.data.feature_cache else self.train_set
        self.writer = None
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.out / "tb"))
            except ImportError:  # tensorboard is optional at run time
                log.warning("tensorboard is not installed: no event files will be written")
        self.metrics_file = self.out / "metrics.json"
        self.bad_samples = 0  # unreadable training samples skipped by this process
        self._faces: np.ndarray | None = None  # the body's triangles, for the validation pictures
        self._pictures_off = False

    def _feature_cache(self) -> Any:
        """The training set's crops through the frozen backbone, once (``data.feature_cache``)."""
        from whmr_core.training.feature_cache import build_feature_cache, check_cacheable

        d = self.cfg.data
        if self.world > 1:
            raise ConfigError("data.feature_cache: one process only (not with torchrun)")
        check_cacheable(self.model, augment=d.augment, copies=d.cache_copies, maps=d.maps, mix=bool(d.mix))
        assert d.feature_cache is not None
        return build_feature_cache(
            d.feature_cache, self.train_set, self.model, copies=d.cache_copies, num_workers=d.num_workers
        )

    # -- ranks ----------------------------------------------------------------------------------------------
    def _main_decides(self, decide: Any) -> Any:
        """``decide()`` run on rank 0 only, its (picklable) result given to every rank."""
        if self.world == 1:
            return decide()
        box = [decide() if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def _all_finite(self, loss: torch.Tensor) -> bool:
        finite = torch.isfinite(loss.detach()).to(torch.int32)
        if self.world > 1:
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        return bool(finite)

    def _check_ranks_agree(self, stage: int) -> None:
        """DDP keeps the ranks' weights equal; a difference means a rank trained on something else."""
        if self.world == 1:
            return
        fingerprint = torch.stack([p.detach().double().sum() for p in self.model.parameters()])
        gathered = [torch.empty_like(fingerprint) for _ in range(self.world)]
        torch.distributed.all_gather(gathered, fingerprint)
        spread = max(float((g - gathered[0]).abs().max()) for g in gathered)
        if spread > 0:
            raise RuntimeError(
                f"stage {stage}: the ranks' weights differ (max parameter-sum gap {spread:.3g})"
            )
        log.info("stage %d: weights identical on all %d ranks", stage, self.world)

    def _data_has_maps(self) -> bool:
        """Whether the training data gives IUV/depth targets (``data.maps`` on and map names in the file)."""
        sets = getattr(self.train_set, "datasets", [self.train_set])
        return any(getattr(d, "with_maps", False) and d.ann.get("iuvname") is not None for d in sets)

    def _label_counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for d in getattr(self.train_set, "datasets", [self.train_set]):
            for k, v in d.label_counts().items():
                totals[k] = totals.get(k, 0) + v
        return totals

    def check_stage_losses(self, stage: int) -> list[str]:
        """The stage's loss terms that have labels in the training data; those without are off, said once.
        A stage left with no term (stage III without world labels) is refused with the reason."""
        counts = self._label_counts()
        weights = asdict(self.cfg.weights)
        active: list[str] = []
        off: dict[str, str] = {}
        for term in stage_terms(stage_rules(stage)):
            need = LOSS_LABELS[term]
            if weights[term] == 0:
                off[term] = "weight 0"
            elif need is not None and counts.get(need, 0) == 0:
                off[term] = f"no training sample has {LABEL_NAMES[need]}"
            elif term not in PRIORS:
                active.append(term)
        by_reason: dict[str, list[str]] = {}
        for term, reason in off.items():
            by_reason.setdefault(reason, []).append(term)
        reasons = "; ".join(f"{', '.join(t)}: {r}" for r, t in by_reason.items())
        if not active:
            raise ConfigError(
                f"stage {stage}: every loss is off ({reasons}), so it would train nothing; run the other "
                "stages only (--stage), or add data with those labels"
            )
        if off and self.is_main:
            log.warning("stage %d: losses off: %s", stage, reasons)
        return active

    def _log_pictures(self, stage: int, step: int) -> None:
        """The predicted mesh over the first validation set's first crops, in TensorBoard."""
        if self.writer is None or not self.val_sets or self._pictures_off:
            return
        from whmr_core.body import resolve
        from whmr_core.training.pictures import mesh_pictures

        if self._faces is None:
            self._faces = np.asarray(resolve(self.cfg.body).load().faces, dtype=np.int64)
        _, ds = self.val_sets[0]
        batch = _collate([ds[i] for i in range(min(4, len(ds)))])
        pictures = mesh_pictures(self.model, batch, self._faces)
        if pictures is None:
            self._pictures_off = True  # said once by mesh_pictures
            return
        self.writer.add_images(f"stage{stage}/val/meshes", pictures, step, dataformats="NHWC")

    def _count_bad_samples(self, st: _StageRun, raw: dict[str, Any]) -> None:
        """Add the batch's skipped unreadable samples (the dataset warned of each); stop past the limit."""
        if "bad_samples" not in raw:
            return
        self.bad_samples += int(raw["bad_samples"].sum())
        limit = self.cfg.data.max_bad_samples
        if self.bad_samples > limit:
            raise AnnotationError(
                self.cfg.data.train, None, "imgname",
                f"{self.bad_samples} unreadable samples skipped (data.max_bad_samples {limit}), "
                f"stage {st.stage} step {st.step}: check the image folder",
            )  # fmt: skip

    def _wants_aux(self, st: _StageRun, batch: Batch) -> bool:
        """Run the auxiliary heads only when their losses are on (stages I-II, maps in the data)."""
        return st.rules.camera_losses and batch.maps is not None

    # -- checkpoints --------------------------------------------------------------------------------------
    def _stage_dir(self, stage: int) -> Path:
        return self.out / f"stage{stage}"

    def _config_meta(self) -> dict[str, Any]:
        from whmr_core.config_io import dataclass_to_dict

        model = dataclass_to_dict(self.model.config)
        # The backbone's weights are in every checkpoint: its pretrained file is never needed again.
        model["backbone"]["pretrained"] = None
        return {
            "name": self.model.config.name,
            "model": model,
            "body": self.cfg.body,
        }

    def _save(self, path: Path, optimizer: Any, scheduler: Any, state: dict[str, Any]) -> None:
        if not self.is_main:
            return
        train_state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng_torch": torch.get_rng_state(),
            **({"rng_cuda": torch.cuda.get_rng_state(self.device)} if self.device.type == "cuda" else {}),
            **state,
        }
        save_checkpoint(
            path,
            self.model.state_dict(),
            config=self._config_meta(),
            train_state=train_state,
            meta={"stage": state["stage"], "step": state["step"], "epoch": state["epoch"]},
        )

    # -- training -----------------------------------------------------------------------------------------
    def run(self, stages: list[int], resume: bool = False) -> Path:
        for stage in stages:  # refuse before training anything, not after hours of stage I
            self.check_stage_losses(stage)
        if self.cfg.init_from:
            # Another run's weights where names and shapes match (new parameters keep their
            # initialisation); the first stage run here starts from them unless this run has its own.
            init_from_checkpoint(self.model, self.cfg.init_from)
        initial = self.out / "initial"
        if self.is_main and not initial.is_dir():
            # The untrained network, the baseline every evaluation of this run is compared with.
            save_checkpoint(initial, self.model.state_dict(), config=self._config_meta(), meta={"stage": 0})
        for stage in stages:
            final = self._stage_dir(stage) / "final"
            # Rank 0 alone looks at (and repairs) the checkpoints; every rank follows its decision.
            if resume and self._main_decides(lambda f=final: recover_checkpoint(f)):
                log.info("stage %d already finished (%s), skipping", stage, final)
                load_checkpoint(final, self.model)
                continue
            last = self._stage_dir(stage) / "last"
            resumes = resume and self._main_decides(lambda p=last: recover_checkpoint(p))
            if stage > 1 and not resumes:
                prev = self._stage_dir(stage - 1) / "final"
                if not prev.is_dir() and self.cfg.init_from and stage == stages[0]:
                    log.info("stage %d starts from %s (init_from)", stage, self.cfg.init_from)
                elif not prev.is_dir():
                    raise CheckpointError(
                        f"stage {stage} starts from stage {stage - 1}'s result, but {prev} does not exist: "
                        f"run stage {stage - 1} into {self.out} first (or --stage all)"
                    )
                else:
                    load_checkpoint(prev, self.model)
            self.train_stage(stage, resume=resume)
        model_dir = self.out / "model"
        if self.is_main:
            save_checkpoint(
                model_dir,
                self.model.state_dict(),
                config=self._config_meta(),
                half=True,
                meta={"stages": stages},
            )
        return model_dir

    def train_stage(self, stage: int, resume: bool = False) -> None:
        """Train one stage to its step budget, validating at each epoch's end and at the stage's end."""
        st = self._start_stage(stage, resume)
        from tqdm import tqdm

        bar = tqdm(
            total=st.total,
            initial=st.step,
            desc=f"stage {stage} ({', '.join(st.names)})",
            disable=not self.is_main,
            dynamic_ncols=True,
        )
        spe = st.steps_per_epoch
        while st.step < st.total:
            if st.step - st.epoch * spe >= spe:
                st.epoch += 1
                continue
            t0 = time.perf_counter()
            for raw in self._epoch_loader(st):
                self._count_bad_samples(st, raw)
                losses = self._train_step(st, Batch.from_collated(raw, self.device))
                dt, t0 = time.perf_counter() - t0, time.perf_counter()
                bar.update(1)
                bar.set_postfix(
                    loss=f"{float(losses['total']):.4g}",
                    lr=f"{st.scheduler.get_last_lr()[0]:.2g}",
                    img_s=f"{self.cfg.batch_size * self.world / dt:.1f}",
                )
                self._log_step(st, losses, raw.get("source"))
                if st.step % self.cfg.checkpoint_every == 0 or st.step == st.total:
                    self._save_stage(st, "last")
                if st.step >= st.total or st.step - st.epoch * spe >= spe:
                    break
            if st.step - st.epoch * spe >= spe or st.step >= st.total:
                self.validate(stage, st.epoch, st.step, st)
        bar.close()
        if st.skipped:
            log.warning("stage %d: %d of %d steps skipped (non-finite loss)", stage, st.skipped, st.step)
        self._check_ranks_agree(stage)
        self._save_stage(st, "final")
        if self.world > 1:
            torch.distributed.barrier()

    def _start_stage(self, stage: int, resume: bool) -> _StageRun:
        """Freeze per the stage rules, build optimiser + schedule, and restore them from ``last``."""
        cfg, scfg = self.cfg, self.cfg.stage(stage)
        names = configure_stage(self.model, stage)
        aux = getattr(self.model, "aux_heads", None)
        if aux is not None and not self._data_has_maps():
            # No IUV/depth targets: the auxiliary heads neither run nor train (and DDP finds no unused
            # parameter).
            aux.requires_grad_(False)
            aux.eval()
            names = [n for n in names if n != "aux_heads" and not n.startswith("aux_heads.")]
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(
            self._param_groups(params, scfg.lr), lr=scfg.lr, weight_decay=scfg.weight_decay
        )
        net: Any = self.model
        if self.world > 1:
            # Every trained parameter gets a gradient each step: the auxiliary heads run only when their
            # losses do (``_wants_aux``), so DDP need not search the graph for unused ones.
            net = torch.nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=False,
            )
        epoch_size = getattr(self.train_items, "epoch_size", len(self.train_items))
        steps_per_epoch = epoch_size // self.world // cfg.batch_size
        if steps_per_epoch == 0:
            raise ValueError(
                f"batch_size {cfg.batch_size} is larger than the training set ({epoch_size} samples)"
            )
        if hasattr(self.train_set, "describe") and self.is_main:
            log.info("stage %d data mix: %s", stage, self.train_set.describe())
        total = scfg.epochs * steps_per_epoch
        if scfg.max_steps is not None:
            total = min(total, scfg.max_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda k: lr_factor(k, total, scfg.schedule, scfg.warmup_steps)
        )
        use_amp = cfg.amp and self.device.type == "cuda"
        amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
        st = _StageRun(
            stage=stage,
            config=scfg,
            rules=stage_rules(stage),
            names=names,
            params=params,
            net=net,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16),
            amp_dtype=amp_dtype if use_amp else None,
            sampler=ResumableSampler(
                epoch_size,
                cfg.seed + 1000 * stage,
                rank=self.rank,
                world=self.world,
                order=getattr(self.train_items, "epoch_order", None),
            ),
            steps_per_epoch=steps_per_epoch,
            total=total,
        )
        last = self._stage_dir(stage) / "last"
        if resume and self._main_decides(lambda p=last: recover_checkpoint(p)):
            ck = load_checkpoint(last, self.model)
            state = ck["train_state"] or {}
            if state.get("stage") != stage:
                raise CheckpointError(f"{last}: holds stage {state.get('stage')}, expected {stage}")
            optimizer.load_state_dict(state["optimizer"])
            if "scheduler" in state:
                scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng_torch"])
            if "rng_cuda" in state and self.device.type == "cuda":
                torch.cuda.set_rng_state(state["rng_cuda"], self.device)
            st.step, st.epoch = int(state["step"]), int(state["epoch"])
            st.skipped = int(state.get("skipped_steps", 0))
            log.info("resuming stage %d at step %d (epoch %d)", stage, st.step, st.epoch)
        return st

    def _param_groups(self, params: list[torch.nn.Parameter], lr: float) -> list[dict[str, Any]]:
        """One group at the stage's rate, and the backbone's trained parameters at ``lr`` times its
        ``lr_scale`` where it has one (movenet with ``backbone.tune_fpn``)."""
        scale = getattr(self.model.backbone, "lr_scale", None)
        if scale is None:
            return [{"params": params}]
        own = {id(p) for p in self.model.backbone.parameters()}
        rest = [p for p in params if id(p) not in own]
        tuned = [p for p in params if id(p) in own]
        if tuned and self.is_main:
            log.info("backbone: %d tensors train at lr x %g", len(tuned), scale)
        return [g for g in ({"params": rest}, {"params": tuned, "lr": lr * scale}) if g["params"]]

    def _epoch_loader(self, st: _StageRun) -> DataLoader:
        """The rest of epoch ``st.epoch`` from the current step on (mid-epoch after a resume)."""
        cfg = self.cfg
        in_epoch = st.step - st.epoch * st.steps_per_epoch
        st.sampler.set_epoch(st.epoch, start=in_epoch * cfg.batch_size)
        if hasattr(self.train_items, "set_epoch"):  # a feature cache's augmentations are fixed
            self.train_items.set_epoch(st.epoch + 1000 * st.stage)
        return DataLoader(
            self.train_items,
            batch_size=cfg.batch_size,
            sampler=st.sampler,
            drop_last=True,
            num_workers=cfg.data.num_workers,
            collate_fn=_collate,
            persistent_workers=False,
            # Its own generator: creating the iterator must not consume the global RNG (dropout),
            # or a resumed run would diverge from an uninterrupted one.
            generator=torch.Generator().manual_seed(cfg.seed + st.epoch),
        )

    def _train_step(self, st: _StageRun, batch: Batch) -> dict[str, torch.Tensor]:
        """One optimiser step; returns the detached loss terms."""
        with torch.autocast(self.device.type, dtype=st.amp_dtype, enabled=st.amp_dtype is not None):
            if batch.features is not None:  # the frozen backbone (part)'s maps, from the feature cache
                from whmr_core.training.feature_cache import cached_features

                out = self.model.forward_features(
                    cached_features(self.model, list(batch.features)),
                    batch.glob_info,
                    batch.cam_rotation,
                    self._wants_aux(st, batch),
                )
            else:
                assert batch.img is not None
                out = st.net(
                    network_crops(self.model.crop_hw, batch.img),
                    batch.glob_info,
                    batch.cam_rotation,
                    return_aux=self._wants_aux(st, batch),
                )
        losses = compute_losses(
            out,
            batch,
            self.model,
            st.rules,
            self.cfg.weights,
            full2_every_iteration=self.cfg.full2_every_iteration,
            iteration_losses=self.cfg.iteration_losses,
        )
        loss = losses["total"]
        st.optimizer.zero_grad(set_to_none=True)
        if not self._all_finite(loss):
            # An fp16 overflow or a bad label: leave the step out on every rank (they must agree, or DDP's
            # gradient all-reduce would wait forever), count it, stop when it keeps happening.
            st.skipped += 1
            limit = self.cfg.max_nonfinite_steps
            log.warning(
                "stage %d step %d: non-finite loss %s, step skipped (%d so far, limit %d)",
                st.stage, st.step, float(loss.detach()), st.skipped, limit,
            )  # fmt: skip
            if st.skipped > limit:
                raise FloatingPointError(
                    f"stage {st.stage}: {st.skipped} steps with a non-finite loss (max_nonfinite_steps "
                    f"{limit}); last at step {st.step}"
                )
            with warnings.catch_warnings():  # the schedule follows the step count, taken or skipped
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                st.scheduler.step()
            st.step += 1
            return {k: v.detach() for k, v in losses.items()}

        st.scaler.scale(loss).backward()
        if self.cfg.grad_clip:
            st.scaler.unscale_(st.optimizer)
            torch.nn.utils.clip_grad_norm_(st.params, self.cfg.grad_clip)
        st.scaler.step(st.optimizer)
        st.scaler.update()
        st.scheduler.step()
        st.step += 1
        return {k: v.detach() for k, v in losses.items()}

    def _log_step(self, st: _StageRun, losses: dict[str, torch.Tensor], source: Any = None) -> None:
        if self.writer is None or st.step % self.cfg.log_every != 0:
            return
        if source is not None:  # a mix: each set's share of this batch, next to its configured ratio
            names = self.train_set.names
            counts = torch.bincount(source.reshape(-1), minlength=len(names)).tolist()
            for name, c, n in zip(names, counts, self.train_set.counts, strict=True):
                self.writer.add_scalar(
                    f"stage{st.stage}/data/batch_share/{name}", c / max(sum(counts), 1), st.step
                )
                self.writer.add_scalar(
                    f"stage{st.stage}/data/ratio/{name}", n / sum(self.train_set.counts), st.step
                )
        for k, v in losses.items():
            self.writer.add_scalar(f"stage{st.stage}/loss/{k}", float(v), st.step)
        self.writer.add_scalar(f"stage{st.stage}/lr", st.scheduler.get_last_lr()[0], st.step)

    def _save_stage(self, st: _StageRun, which: str) -> None:
        self._save(
            self._stage_dir(st.stage) / which,
            st.optimizer,
            st.scheduler,
            {"stage": st.stage, "step": st.step, "epoch": st.epoch, "skipped_steps": st.skipped},
        )

    def validate(
        self, stage: int, epoch: int, step: int, st: _StageRun | None = None
    ) -> dict[str, float] | None:
        """Every validation set with its protocol; returns the first set's metrics. With ``st``, a new
        lowest ``data.best_metric`` on the first set saves ``stage{k}/best``."""
        if not self.val_sets or not self.is_main:
            return None
        results: list[tuple[str, dict[str, float]]] = []
        for vset, ds in self.val_sets:
            loader = DataLoader(
                ds,
                batch_size=min(self.cfg.batch_size, 64),
                shuffle=False,
                collate_fn=_collate,
                num_workers=0,
                # Its own generator: validating must not draw from the global RNG, or a run resumed after a
                # validated epoch's end would diverge from an uninterrupted one.
                generator=torch.Generator().manual_seed(0),
            )
            metrics = evaluate(CropAdapter(self.model), loader, device=self.device, protocol=vset.protocol)
            results.append((vset.name, metrics))
            line = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            label = "" if vset.name == "val" else f" {vset.name} ({vset.protocol})"
            log.info("stage %d epoch %d step %d%s: %s", stage, epoch, step, label, line)
            print(f"[val] stage {stage} epoch {epoch}{label}: {line}", flush=True)
            if self.writer is not None:
                prefix = "val" if vset.name == "val" else f"val_{vset.name}"
                for k, v in metrics.items():
                    if not math.isnan(v):
                        self.writer.add_scalar(f"stage{stage}/{prefix}/{k}", v, step)
        self._log_pictures(stage, step)
        history = json.loads(self.metrics_file.read_text()) if self.metrics_file.is_file() else []
        for name, metrics in results:
            history.append({"stage": stage, "epoch": epoch, "step": step, "set": name, **metrics})
        tmp = self.metrics_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(history, indent=2))
        tmp.replace(self.metrics_file)
        first_name, first = results[0]
        key = self.cfg.data.best_metric
        if st is not None and key in first and not math.isnan(first[key]):
            earlier = [
                h for h in history[: -len(results)] if h.get("stage") == stage and h.get("set") == first_name
            ]
            best = min((h[key] for h in earlier if key in h), default=math.inf)
            if first[key] < best:
                self._save_stage(st, "best")
                log.info("stage %d: best %s %.4g on %s so far: saved %s", stage, key, first[key], first_name,
                         self._stage_dir(stage) / "best")  # fmt: skip
        return first
