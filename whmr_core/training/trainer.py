"""The three-stage trainer: one process (CPU or GPU) or many (torchrun + DDP), mixed precision on GPU,
atomic resumable checkpoints, TensorBoard logs and per-epoch validation.

Layout of ``out_dir``::

    stage{k}/last/    latest checkpoint of stage k (weights + optimizer + step + RNG), written atomically
    stage{k}/final/   the stage's result; stage k+1 starts from it
    initial/          the untrained network (the baseline of the evaluation)
    model/            the final network (weights only, fp16 when ``ship_half``)
    tb/               TensorBoard event files
    metrics.json      validation metrics per stage and epoch

Resuming (``--resume``) continues the first unfinished stage from its ``last`` checkpoint at the same step:
the batch order and augmentations depend only on (seed, stage, epoch, index), and RNG states are restored.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from whmr_core.checkpoint import CheckpointError, load_checkpoint, recover_checkpoint, save_checkpoint
from whmr_core.data.batch import collate as _collate
from whmr_core.data.batch import network_crops
from whmr_core.evaluation import CropAdapter, evaluate
from whmr_core.training.config import TrainConfig
from whmr_core.training.objective import compute_losses, ground_truth_meshes
from whmr_core.training.stages import configure_stage, stage_rules

__all__ = ["ResumableSampler", "Trainer", "build_datasets", "build_network", "lr_factor"]

log = logging.getLogger(__name__)


class ResumableSampler(Sampler[int]):
    """A seeded permutation per epoch, split across ranks, that can start mid-epoch at a batch offset."""

    def __init__(self, size: int, seed: int, *, rank: int = 0, world: int = 1, shuffle: bool = True) -> None:
        self.size, self.seed, self.rank, self.world, self.shuffle = size, seed, rank, world, shuffle
        self.epoch = 0
        self.start = 0  # samples of this rank already consumed in the current epoch

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _order(self) -> list[int]:
        if not self.shuffle:
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


def build_network(cfg: TrainConfig) -> torch.nn.Module:
    from whmr_core.body import load_body_model
    from whmr_core.model import build_model

    body = load_body_model(variant=cfg.body) if cfg.body in ("full", "lowres") else load_body_model(cfg.body)
    return build_model(cfg.model, body=body)


def build_datasets(cfg: TrainConfig, crop_res: int) -> tuple[Any, Any | None]:
    from whmr_core.data.augment import AugmentConfig
    from whmr_core.data.dataset import HumanDataset

    d = cfg.data
    if not d.train or not Path(d.train).is_file():
        raise FileNotFoundError(f"data.train: annotation file not found: {d.train or '(not set)'}")
    if not d.train_images or not Path(d.train_images).is_dir():
        raise FileNotFoundError(f"data.train_images: image folder not found: {d.train_images or '(not set)'}")
    train = HumanDataset(
        d.train,
        d.train_images,
        crop_res=crop_res,
        augment=AugmentConfig() if d.augment else None,
        seed=cfg.seed,
        with_maps=d.maps,
    )
    val = None
    if d.val:
        if not Path(d.val).is_file():
            raise FileNotFoundError(f"data.val: annotation file not found: {d.val}")
        val = HumanDataset(d.val, d.val_images or d.train_images, crop_res=crop_res, augment=None)
        if d.val_max_samples is not None and len(val) > d.val_max_samples:
            val = torch.utils.data.Subset(val, range(d.val_max_samples))
    return train, val


class Trainer:
    def __init__(self, cfg: TrainConfig, out_dir: str | Path, *, device: str | None = None) -> None:
        self.cfg = cfg
        self.out = Path(out_dir)
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            torch.distributed.init_process_group(backend)
        if device is None:
            device = f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.model = build_network(cfg).to(self.device)
        self.train_set, self.val_set = build_datasets(cfg, max(self.model.crop_hw))
        self.is_main = self.rank == 0
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

    # -- checkpoints --------------------------------------------------------------------------------------
    def _stage_dir(self, stage: int) -> Path:
        return self.out / f"stage{stage}"

    def _config_meta(self) -> dict[str, Any]:
        from whmr_core.config_io import dataclass_to_dict

        return {
            "name": self.model.config.name,
            "model": dataclass_to_dict(self.model.config),
            "body": self.cfg.body,
        }

    def _save(self, path: Path, optimizer: Any, scheduler: Any, state: dict[str, Any]) -> None:
        if not self.is_main:
            return
        train_state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng_torch": torch.get_rng_state(),
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
        initial = self.out / "initial"
        if self.is_main and not initial.is_dir():
            # The untrained network, the baseline every evaluation of this run is compared with.
            save_checkpoint(initial, self.model.state_dict(), config=self._config_meta(), meta={"stage": 0})
        for stage in stages:
            final = self._stage_dir(stage) / "final"
            if resume and recover_checkpoint(final):
                log.info("stage %d already finished (%s), skipping", stage, final)
                load_checkpoint(final, self.model)
                continue
            if stage > 1 and not (resume and recover_checkpoint(self._stage_dir(stage) / "last")):
                prev = self._stage_dir(stage - 1) / "final"
                if prev.is_dir():
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
        cfg, scfg, rules = self.cfg, self.cfg.stage(stage), stage_rules(stage)
        model = self.model
        names = configure_stage(model, stage, scfg.train_backbone)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=scfg.lr, weight_decay=scfg.weight_decay)
        net: Any = model
        if self.world > 1:
            net = torch.nn.parallel.DistributedDataParallel(
                model,
                device_ids=[self.local_rank] if self.device.type == "cuda" else None,
                find_unused_parameters=True,
            )
        sampler = ResumableSampler(
            len(self.train_set), cfg.seed + 1000 * stage, rank=self.rank, world=self.world
        )
        steps_per_epoch = len(self.train_set) // self.world // cfg.batch_size
        if steps_per_epoch == 0:
            raise ValueError(
                f"batch_size {cfg.batch_size} is larger than the training set ({len(self.train_set)} samples)"
            )
        total = scfg.epochs * steps_per_epoch
        if scfg.max_steps is not None:
            total = min(total, scfg.max_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda k: lr_factor(k, total, scfg.schedule, scfg.warmup_steps)
        )
        step, epoch = 0, 0
        last = self._stage_dir(stage) / "last"
        if resume and recover_checkpoint(last):
            ck = load_checkpoint(last, model)
            st = ck["train_state"] or {}
            if st.get("stage") != stage:
                raise CheckpointError(f"{last}: holds stage {st.get('stage')}, expected {stage}")
            optimizer.load_state_dict(st["optimizer"])
            if "scheduler" in st:
                scheduler.load_state_dict(st["scheduler"])
            torch.set_rng_state(st["rng_torch"])
            step, epoch = int(st["step"]), int(st["epoch"])
            log.info("resuming stage %d at step %d (epoch %d)", stage, step, epoch)
        use_amp = cfg.amp and self.device.type == "cuda"
        amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

        from tqdm import tqdm

        bar = tqdm(
            total=total,
            initial=step,
            desc=f"stage {stage} ({', '.join(names)})",
            disable=not self.is_main,
            dynamic_ncols=True,
        )
        while step < total:
            in_epoch = step - epoch * steps_per_epoch
            if in_epoch >= steps_per_epoch:
                epoch += 1
                continue
            sampler.set_epoch(epoch, start=in_epoch * cfg.batch_size)
            if hasattr(self.train_set, "set_epoch"):
                self.train_set.set_epoch(epoch + 1000 * stage)
            loader = DataLoader(
                self.train_set,
                batch_size=cfg.batch_size,
                sampler=sampler,
                drop_last=True,
                num_workers=cfg.data.num_workers,
                collate_fn=_collate,
                persistent_workers=False,
                # Its own generator: creating the iterator must not consume the global RNG (dropout),
                # or a resumed run would diverge from an uninterrupted one.
                generator=torch.Generator().manual_seed(cfg.seed + epoch),
            )
            t0 = time.perf_counter()
            for batch in loader:
                batch = {
                    k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                    for k, v in batch.items()
                }
                r_c = torch.where(
                    (batch["has_gravity"] > 0)[:, None, None],
                    batch["cam_rotation"],
                    torch.eye(3, device=self.device).expand(batch["img"].shape[0], 3, 3),
                )
                with torch.autocast(self.device.type, dtype=amp_dtype, enabled=use_amp):
                    out = net(network_crops(model.crop_hw, batch["img"]), batch["glob_info"], r_c)
                gt = ground_truth_meshes(model, batch, world=rules.world_losses)
                losses = compute_losses(out, batch, rules, cfg.weights, gt, model)
                loss = losses["total"]
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"stage {stage} step {step}: non-finite loss {float(loss)}")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                dt = time.perf_counter() - t0
                t0 = time.perf_counter()
                bar.update(1)
                bar.set_postfix(
                    loss=f"{float(loss.detach()):.4g}",
                    lr=f"{scheduler.get_last_lr()[0]:.2g}",
                    img_s=f"{cfg.batch_size * self.world / dt:.1f}",
                )
                if self.writer is not None and step % cfg.log_every == 0:
                    for k, v in losses.items():
                        self.writer.add_scalar(f"stage{stage}/loss/{k}", float(v.detach()), step)
                    self.writer.add_scalar(f"stage{stage}/lr", scheduler.get_last_lr()[0], step)
                if step % cfg.checkpoint_every == 0 or step == total:
                    self._save(last, optimizer, scheduler, {"stage": stage, "step": step, "epoch": epoch})
                if step >= total or step - epoch * steps_per_epoch >= steps_per_epoch:
                    break
            end_of_epoch = step - epoch * steps_per_epoch >= steps_per_epoch
            if end_of_epoch or step >= total:
                self.validate(stage, epoch, step)
        bar.close()
        if self.is_main:
            self._save(
                self._stage_dir(stage) / "final",
                optimizer,
                scheduler,
                {"stage": stage, "step": step, "epoch": epoch},
            )
        if self.world > 1:
            torch.distributed.barrier()

    def validate(self, stage: int, epoch: int, step: int) -> dict[str, float] | None:
        if self.val_set is None or not self.is_main:
            return None
        loader = DataLoader(
            self.val_set,
            batch_size=min(self.cfg.batch_size, 64),
            shuffle=False,
            collate_fn=_collate,
            num_workers=0,
        )

        metrics = evaluate(CropAdapter(self.model), loader, device=self.device)
        line = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        log.info("stage %d epoch %d step %d: %s", stage, epoch, step, line)
        print(f"[val] stage {stage} epoch {epoch}: {line}", flush=True)
        if self.writer is not None:
            for k, v in metrics.items():
                if not math.isnan(v):
                    self.writer.add_scalar(f"stage{stage}/val/{k}", v, step)
        history = json.loads(self.metrics_file.read_text()) if self.metrics_file.is_file() else []
        history.append({"stage": stage, "epoch": epoch, "step": step, **metrics})
        tmp = self.metrics_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(history, indent=2))
        tmp.replace(self.metrics_file)
        return metrics
