"""Typed schema for params.yaml: one section per stage, unknown or mistyped keys fail loudly.

Every stage loads only the sections it reads (the same ones dvc.yaml lists for it), so
a typo is reported by the first stage that depends on the mistyped section.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import annotated_types
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from visionops.errors import VisionOpsError

Severity = Literal["critical", "warning", "info"]
FIX_MARK = "; fix: "  # a section-wide rule's message: "cause; fix: what to do"


class Section(BaseModel):
    """Base for a params section: unknown keys are errors, and types are strict (`epochs: true`
    or `epochs: 3.5` is refused rather than read as 1 or 3; an integer is a valid number; `.inf`
    and `.nan` are no numbers any key takes)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class DataParams(Section):
    """`download` stage: where the images come from, how they are fetched and split."""

    source: Literal["digits", "cifar10", "cifar100", "mnist", "fashion-mnist", "url", "folder"] = "digits"
    url: str | None = None  # url: the archive; cifar*: archive mirror; mnist*: base URL of the .gz files
    sha256: str | None = None  # expected SHA-256 of the archive (url, cifar*); replaces the canonical md5
    checksums: dict[str, str] = Field(default_factory=dict)  # mnist*: file name -> SHA-256 (mirror builds)
    allow_unverified: bool = False  # url source without sha256 (prints the hash to pin)
    allow_http: bool = False  # plain http:// (checksums still verified)
    # folder source: a class-folder tree (read, never modified), listed with every file's SHA-256
    # by the scan stage on each repro (data/listing/), so any change in it re-runs download
    path: str = Field("data/images", min_length=1)
    follow_links: bool = False  # folder source: copy the targets of links that lead out of data.path
    cache_dir: str | None = None  # default $VISIONOPS_CACHE_DIR, else ~/.cache/visionops
    timeout_s: float = Field(30.0, gt=0.0)  # connect and read timeout per request
    retries: int = Field(4, ge=0, le=20)  # on connection errors, timeouts, 408/429/5xx; then resume
    max_extract_mb: int = Field(20_000, ge=1)  # cap on bytes an archive may unpack to (zip bombs)
    max_members: int = Field(2_000_000, ge=1)  # cap on archive entries
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)  # for sources without a test split
    seed: int = 42
    # data/raw grows by new shards; removed images' bytes are reclaimed (every shard re-packed)
    # once they exceed this share of all shard bytes
    max_dead_fraction: float = Field(0.25, ge=0.0, le=1.0)


class ValidateParams(Section):
    """`validate` stage: Great Expectations thresholds and the severity of each check."""

    min_width: int = Field(4, ge=1)
    max_width: int = Field(8192, ge=1)
    min_height: int = Field(4, ge=1)
    max_height: int = Field(8192, ge=1)
    min_images_per_class: int = Field(5, ge=1)
    on_bad_image: Literal["fail", "quarantine"] = "fail"  # quarantine: exclude corrupt/leaked files
    leakage_severity: Severity = "critical"  # the same image in train and test
    duplicate_severity: Severity = "warning"  # the same image twice within a split
    near_duplicate_distance: int = Field(2, ge=0, le=64)  # perceptual-hash bits; <= this = near-duplicate
    near_duplicate_severity: Severity = "warning"  # a near-duplicate across train and test
    size_severity: Severity = "warning"
    max_imbalance: float = Field(10.0, ge=1.0)  # largest / smallest class count per split
    imbalance_severity: Severity = "warning"
    quality_outlier_z: float = Field(3.5, gt=0.0)  # robust z-score vs the dataset beyond which = outlier
    min_brightness: float = Field(8.0, ge=0.0, le=255.0)  # absolute floor: mean grey below = nearly black
    max_brightness: float = Field(247.0, ge=0.0, le=255.0)  # above = nearly white
    min_contrast: float = Field(2.0, ge=0.0)  # absolute floor: grey std below = blank
    label_conflict_severity: Severity = "critical"  # the same picture under two labels
    quality_severity: Severity = "warning"
    mode_severity: Severity = "info"  # mixed channel modes (e.g. L and RGB)


class AugmentStep(Section):
    """One albumentations transform: its class name and keyword arguments."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class AugmentParams(Section):
    """`augment` stage: resize, channels and the offline albumentations policy."""

    image_size: int = Field(16, ge=4, le=1024)
    channels: Literal[1, 3] = 1
    copies: int = Field(2, ge=0, le=50)
    seed: int = 42
    policy: list[AugmentStep] = Field(default_factory=list)
    preview_images: int = Field(8, ge=1, le=32)
    chunk_mb: float = Field(32.0, gt=0.0)  # images are packed and written this many MB at a time
    workers: int = Field(0, ge=0, le=256)  # decode/resize/augment threads; 0 = one per CPU core


class ModelParams(Section):
    """`train` stage: which network to build."""

    arch: Literal[
        "simple_cnn", "resnet9", "resnet_cifar", "resnet18", "mobilenet_v3_small", "efficientnet_b0"
    ] = "simple_cnn"
    width: int = Field(32, ge=4, le=1024)  # base channels of simple_cnn / resnet9
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    pretrained: bool = False  # torchvision weights (backbones only); needs network or the hub cache
    # the fast-training recipe (airbench): scratch networks only, all off by default
    logit_scale: float = Field(1.0, gt=0.0)  # multiply the logits (airbench94: 1/9)
    tta: Literal["none", "flip", "flip_translate"] = "none"  # test-time views averaged (evaluate, ONNX)
    whiten_init: bool = False  # first conv from the whitening of training-set patches
    dirac_init: bool = False  # convs start as the identity on their first in_channels filters

    @model_validator(mode="after")
    def _recipe_needs_a_scratch_net(self) -> ModelParams:
        fields = type(self).model_fields
        recipe = ("logit_scale", "whiten_init", "dirac_init")  # tta wraps any network
        changed = [key for key in recipe if getattr(self, key) != fields[key].default]
        if changed and self.arch not in ("simple_cnn", "resnet9"):
            raise ValueError(
                f"model.{', model.'.join(changed)} apply to the scratch networks (simple_cnn, resnet9), "
                f"not to {self.arch}{FIX_MARK}set model.arch to one of them, or leave "
                f"model.{', model.'.join(changed)} at the default"
            )
        return self


class TrainParams(Section):
    """`train` stage: optimisation, device and per-batch (on-device) augmentation."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    epochs: int = Field(8, ge=1, le=10_000)  # a bound that catches a typo (or a search range) of 53,560
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adamw", "sgd"] = "adamw"  # sgd = SGD with Nesterov momentum 0.9
    schedule: Literal["onecycle", "cosine"] = "onecycle"
    warmup_epochs: float = Field(0.0, ge=0.0)  # linear warm-up before cosine decay
    lr: float = Field(3e-3, gt=0.0)
    weight_decay: float = Field(5e-4, ge=0.0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    grad_clip: float = Field(0.0, ge=0.0)  # max gradient norm; 0 = off
    ema_decay: float = Field(0.0, ge=0.0, lt=1.0)  # exponential moving average of weights; 0 = off
    bn_bias_lr_scale: float = Field(1.0, gt=0.0)  # BatchNorm biases learn this many times faster
    early_stopping_patience: int = Field(0, ge=0)  # epochs without val improvement; 0 = off
    deterministic: bool = False  # torch.use_deterministic_algorithms (slower on GPU)
    compile: bool = False  # torch.compile the model
    device_memory_budget_mb: int = Field(2048, ge=0)  # larger data stays in pinned host memory
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 42
    amp: bool = True
    channels_last: bool = True
    crop_padding: int = Field(1, ge=0, le=16)
    hflip: bool | Literal["alternating"] = False  # alternating: each image flipped every other epoch
    nproc: int = Field(1, ge=1, le=64)  # >1: the stage re-launches itself under torchrun (DDP)


class TrackingParams(Section):
    """MLflow: the experiment every training run lands in, and what happens in an outage."""

    experiment: str = Field("visionops", min_length=1)
    on_unavailable: Literal["fail", "defer"] = "fail"  # defer: journal it, succeed, `visionops sync` later
    retries: int = Field(3, ge=0, le=10)  # MLflow's own HTTP retries per request
    backoff_factor: int = Field(1, ge=0, le=30)  # MLflow waits factor * 2**(n-1) s before retry n
    timeout_s: float = Field(10.0, gt=0.0)  # per HTTP request


class EvaluateParams(Section):
    """`evaluate` stage."""

    batch_size: int = Field(256, ge=1)
    calibration_bins: int = Field(10, ge=2, le=100)
    train_label_issues: bool = False  # also search train: k-fold out-of-fold probabilities, cheap model


class CompressParams(Section):
    """`compress` stage: structured pruning + fine-tune, INT8 post-training quantization."""

    pruning_ratio: float = Field(0.5, ge=0.0, lt=1.0)  # per layer (or overall when global); the cap
    pruning_steps: int = Field(1, ge=1, le=50)  # reach the ratio in N steps, fine-tuning after each
    target_macs_ratio: float | None = Field(None, gt=0.0, lt=1.0)  # stop once MACs <= this x baseline
    global_pruning: bool = False  # rank channels across layers instead of the same ratio per layer
    round_to: int = Field(8, ge=1)  # keep pruned channel counts multiples of this
    finetune_epochs: int = Field(2, ge=0)  # per pruning step
    distill: bool = False  # fine-tune against the unpruned model's soft targets
    distill_temperature: float = Field(4.0, gt=0.0)
    distill_alpha: float = Field(0.7, ge=0.0, le=1.0)  # weight of the soft-target loss
    finetune_lr: float = Field(1e-3, gt=0.0)
    calibration_images: int = Field(512, ge=1)
    latency_batch_size: int = Field(64, ge=1)
    latency_repeats: int = Field(30, ge=1)


class ExportParams(Section):
    """`export` stage: ONNX export + parity, TensorRT engine where possible."""

    opset: int = Field(20, ge=17)
    parity_atol: float = Field(1e-4, gt=0.0)
    parity_images: int = Field(256, ge=1)
    fp16_parity_atol: float = Field(0.05, gt=0.0)  # FP16 ONNX (fp32 I/O) vs PyTorch
    latency_repeats: int = Field(30, ge=1)
    tensorrt: Literal["auto", "off"] = "auto"
    require_tensorrt: bool = False
    tensorrt_precision: Literal["fp32", "fp16", "int8"] = "fp16"
    tensorrt_max_batch: int = Field(64, ge=1)
    tensorrt_workspace_mb: int = Field(1024, ge=16)


class RegisterParams(Section):
    """`register` stage: the registry name and the promotion gate."""

    model_name: str = Field(
        "visionops-classifier",
        min_length=1,
        max_length=256,  # MLflow's column (PostgreSQL refuses a longer one mid-registration)
        description="a name without '/', ':' or '@', not '.' and not starting with '..', without "
        "spaces at either end (e.g. 'visionops-classifier')",
    )
    gate_metric: Literal["accuracy", "f1_macro", "precision_macro", "recall_macro"] = "f1_macro"
    min_delta: float = Field(0.0, ge=0.0)
    max_p_value: float = Field(0.05, gt=0.0, le=1.0)

    @field_validator("model_name")
    @classmethod
    def _registry_name(cls, name: str) -> str:
        """MLflow's own rule (no '/' or ':', not a path such as '.' or '..x'), plus no '@', which
        starts the alias in models:/NAME@champion; checked with the params, before any run."""
        bad = [c for c in "/:@" if c in name]
        if bad:
            raise ValueError(f"'{bad[0]}' is not allowed in a registered model name")
        if name != name.strip():
            raise ValueError("spaces at either end are not allowed")
        if name == "." or name.startswith(".."):
            raise ValueError("MLflow refuses '.' and names starting with '..'")
        return name


# train.* and model.* keys a search may not vary: they change what a trial is scored on (the
# validation split, the seed) or where and how it runs, not the model.
NOT_SEARCHED = frozenset(
    {
        "train.val_fraction",
        "train.seed",
        "train.device",
        "train.nproc",
        "train.device_memory_budget_mb",
        "train.deterministic",
        "train.compile",
    }
)


def searchable_keys() -> list[str]:
    """Every train.* and model.* key `tune.space` may name."""
    keys = [f"train.{name}" for name in TrainParams.model_fields] + [
        f"model.{name}" for name in ModelParams.model_fields
    ]
    return sorted(key for key in keys if key not in NOT_SEARCHED)


class Dimension(Section):
    """One searched key: exactly one of `log_uniform: [low, high]`, `uniform: [low, high]`,
    `int_uniform: [low, high]` or `choice: [a, b, ...]`."""

    log_uniform: list[float] | None = Field(None, min_length=2, max_length=2)
    uniform: list[float] | None = Field(None, min_length=2, max_length=2)
    int_uniform: list[int] | None = Field(None, min_length=2, max_length=2)
    choice: list[int | float | str | bool] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_distribution(self) -> Dimension:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of log_uniform, uniform, int_uniform, choice "
                f"(got {', '.join(given) or 'none'})"
            )
        bounds = self.log_uniform or self.uniform or self.int_uniform
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError(f"the range [{bounds[0]}, {bounds[1]}] needs low < high")
        if self.log_uniform is not None and self.log_uniform[0] <= 0:
            raise ValueError("log_uniform needs low > 0")
        return self

    def values_to_check(self) -> list[Any]:
        """The values whose validity stands for the whole dimension (both ends, or every choice)."""
        return list(self.choice or self.log_uniform or self.uniform or self.int_uniform or [])


class TuneParams(Section):
    """`visionops tune` (not a DVC stage): what a hyperparameter search varies and its budget."""

    space: dict[str, Dimension] = Field(default_factory=dict)  # "train.lr": {log_uniform: [1e-4, 3e-2]}
    trials: int = Field(20, ge=1)  # the study's total, shared by every process working on it
    timeout_s: float | None = Field(None, gt=0.0)  # this process stops starting trials after this
    sampler_seed: int = 0  # TPE's seed
    startup_trials: int = Field(4, ge=0)  # median pruner: trials that finish before it stops any
    warmup_epochs: int = Field(1, ge=0)  # epochs each trial trains before it can be pruned
    pruner: Literal["hyperband", "median", "none"] = "hyperband"  # none: every trial trains all its epochs

    @field_validator("space")
    @classmethod
    def _searchable(cls, space: dict[str, Dimension]) -> dict[str, Dimension]:
        """Known train.*/model.* keys only, with values those keys accept."""
        allowed = searchable_keys()
        for key, dimension in space.items():
            if key not in allowed:
                raise ValueError(
                    f"'{key}' cannot be searched{_did_you_mean(key, allowed)}; "
                    f"the keys are: {', '.join(allowed)}"
                )
            section, name = key.split(".", 1)
            model = TrainParams if section == "train" else ModelParams
            for value in dimension.values_to_check():
                try:
                    model.model_validate({name: value})
                except ValidationError as exc:
                    raise ValueError(
                        f"{key}: {value!r} is not a valid value ({exc.errors()[0]['msg']})"
                    ) from None
        return space


class MonitorParams(Section):
    """`visionops monitor` (not a DVC stage): a window of recent images against the registered
    model's reference, and when retraining is due."""

    window: int = Field(1000, ge=1)  # the newest N images (by modification time) form the window
    min_window: int = Field(50, ge=10)  # fewer readable images than this is an error, not a verdict
    alpha: float = Field(0.05, gt=0.0, lt=1.0)  # false-alarm rate of one check (weighted Holm over all tests)
    max_accuracy_drop: float = Field(0.05, ge=0.0, le=1.0)  # under reference accuracy - this = degraded
    ood_fpr: float = Field(0.05, gt=0.0, lt=0.5)  # reference images beyond the out-of-domain threshold
    max_ood_share: float = Field(0.2, gt=0.0, lt=1.0)  # window's share over it = out_of_domain
    max_ood_for_estimate: float = Field(0.5, gt=0.0, le=1.0)  # over this share, accuracy is not estimable
    experiment: str = Field("Model monitoring", min_length=1)  # MLflow experiment of the checks

    @model_validator(mode="after")
    def _share_over_the_reference_rate(self) -> MonitorParams:
        if self.max_ood_share <= self.ood_fpr:
            raise ValueError(
                f"monitor.max_ood_share {self.max_ood_share} is not above monitor.ood_fpr {self.ood_fpr}: "
                f"every window would be out of domain{FIX_MARK}set max_ood_share above ood_fpr "
                "(defaults 0.2 and 0.05)"
            )
        return self


SECTIONS: dict[str, type[Section]] = {
    "data": DataParams,
    "validate": ValidateParams,
    "augment": AugmentParams,
    "model": ModelParams,
    "train": TrainParams,
    "tracking": TrackingParams,
    "evaluate": EvaluateParams,
    "compress": CompressParams,
    "export": ExportParams,
    "register": RegisterParams,
    "tune": TuneParams,
    "monitor": MonitorParams,
}


def load_params(path: Path | str, *sections: str) -> dict[str, Any]:
    """Read params.yaml, check its top-level sections, and validate the requested ones.

    Returns {section name: validated section model}. Raises VisionOpsError naming the
    key, the section and what is allowed when something is wrong.
    """
    path = Path(path)
    raw = read_params_file(path)
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        name = unknown[0]
        raise VisionOpsError(
            f"{path}: unknown section '{name}'{_did_you_mean(name, SECTIONS)}",
            f"use one of the sections: {', '.join(SECTIONS)}",
        )
    missing = [name for name in sections if name not in raw]
    if missing:
        raise VisionOpsError(
            f"{path}: section '{missing[0]}' is missing",
            f"add '{missing[0]}:' with its keys (the project's params.yaml lists them all), "
            f"or '{missing[0]}: {{}}' to use every default",
        )
    return {name: validate_section(name, raw[name] or {}, path) for name in sections}


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader, but `1e-3` is a float as in YAML 1.2 (and in DVC, which writes
    params.yaml with ruamel); YAML 1.1 reads it as the string '1e-3'. Params are data from
    outside: an alias (`*name`) is refused before it is expanded (a billion-laughs file grew by
    60 MB/s), and a key given twice in one mapping is refused rather than the last one winning."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                f"an alias (*{event.anchor}): params take plain values, not references",
                event.start_mark,
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"'{key}' is given twice in the same mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def read_params_file(path: Path) -> dict[str, Any]:
    """Parse params.yaml into a dict, with a clear error when it is missing, a folder, binary,
    empty, malformed, or holds an alias or a key twice."""
    if path.is_dir():
        raise VisionOpsError(f"{path} is a folder, not a params file", "pass a .yaml file")
    if not path.is_file():
        raise VisionOpsError(f"params file not found: {path}", "run from the project root, or pass --params")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise VisionOpsError(
            f"{path} is not a UTF-8 text file ({exc.reason} at byte {exc.start})",
            f"restore it (`git checkout -- {path}`) or re-save it as UTF-8 YAML",
        ) from None
    try:
        raw = yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        raise VisionOpsError(f"{path} is not valid YAML: {exc}", "fix the syntax") from None
    if raw is None:
        raise VisionOpsError(
            f"{path} is empty, so every stage would silently run on defaults",
            f"restore it (`git checkout -- {path}`) or write its sections (see README: Parameters)",
        )
    if not isinstance(raw, dict):
        raise VisionOpsError(f"{path} must be a mapping of sections", "see README: Parameters")
    return raw


def validate_section(name: str, values: Any, path: Path | str = "params.yaml") -> Section:
    """Validate one section's values, translating pydantic errors into a one-line fix."""
    model = SECTIONS[name]
    if not isinstance(values, dict):
        raise VisionOpsError(
            f"{path}: section '{name}' must be a mapping, got {type(values).__name__}",
            f"write it as '{name}:' followed by indented 'key: value' lines",
        )
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise VisionOpsError(*_explain(exc, name, model, path)) from None


def _explain(exc: ValidationError, section: str, model: type[Section], path: Path | str):
    """Turn the first pydantic error into (cause, fix) naming section, key and allowed values."""
    err = exc.errors()[0]
    if not err["loc"]:  # a rule over the whole section (a model validator): its own words
        cause, _, fix = str(err["msg"]).removeprefix("Value error, ").partition(FIX_MARK)
        return f"{path}: {cause}", fix or f"see the comments in the project's params.yaml for '{section}'"
    key = ".".join(str(part) for part in err["loc"])
    dotted = f"{section}.{key}"
    if err["type"] == "extra_forbidden":
        parent = _model_at(model, err["loc"][:-1])
        allowed = list(parent.model_fields)
        inner = ".".join(map(str, err["loc"][:-1]))
        where = f"'{section}'" if parent is model else f"'{section}.{inner}'"
        cause = f"{path}: unknown key '{dotted}' in section {where}"
        cause += _did_you_mean(str(err["loc"][-1]), allowed)
        return cause, f"allowed keys in {where}: {', '.join(allowed)}"
    allowed = _describe_at(model, err["loc"])
    cause = f"{path}: {dotted} = {err.get('input')!r} is invalid: {err['msg']}"
    if allowed is None:
        return cause, f"see the comments in the project's params.yaml for '{dotted}'"
    return cause, f"set '{dotted}' to {allowed}"


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel]:
    """The nested model a location points into (e.g. augment.policy.0 -> AugmentStep)."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        nested = _nested_model(field.annotation) if field is not None else None
        if nested is None:
            return model
        model = nested
    return model


def _describe_at(model: type[BaseModel], loc: tuple) -> str | None:
    """The allowed values at an error location, descending into list items, nested models
    (augment.policy.0.name) and mapping values (data.checksums.<file>)."""
    parts = [part for part in loc if not isinstance(part, int)]
    while parts:
        field = model.model_fields.get(str(parts.pop(0)))
        if field is None:
            return None
        nested = _nested_model(field.annotation)
        if not parts:
            return describe_field(field)
        if nested is not None:
            model = nested
        elif typing.get_origin(field.annotation) is dict:
            return describe_type(typing.get_args(field.annotation)[1])
        else:
            return describe_field(field)
    return None


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def describe_field(field: FieldInfo) -> str:
    """A field's allowed values in words: 'an integer >= 1', 'one of: simple_cnn, resnet9',
    'a number > 0 and < 1', 'true or false', 'text or null'."""
    if field.description:  # a rule that types and bounds cannot say
        return field.description
    kind = describe_type(field.annotation)
    bounds = " and ".join(filter(None, map(_bound, field.metadata)))
    if not bounds:
        return kind
    nullable = kind.endswith(" or null")
    return f"{kind.removesuffix(' or null')} {bounds}" + (" or null" if nullable else "")


def describe_type(annotation: Any) -> str:
    """A type annotation in words."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return "one of: " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        kinds = [describe_type(a) for a in args if a is not type(None)]
        return " or ".join(kinds) + (" or null" if type(None) in args else "")
    if origin is dict:
        return f"a mapping of {describe_type(args[0])} to {describe_type(args[1])}"
    if origin is list:
        nested = _nested_model(args[0])
        if nested is not None:
            return "a list of {" + ", ".join(nested.model_fields) + "} entries"
        return f"a list of {describe_type(args[0])}"
    words = {bool: "true or false", int: "an integer", float: "a number", str: "text", Any: "any value"}
    return words.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _bound(meta: Any) -> str:
    if isinstance(meta, annotated_types.Ge):
        return f">= {meta.ge:g}"
    if isinstance(meta, annotated_types.Gt):
        return f"> {meta.gt:g}"
    if isinstance(meta, annotated_types.Le):
        return f"<= {meta.le:g}"
    if isinstance(meta, annotated_types.Lt):
        return f"< {meta.lt:g}"
    if isinstance(meta, annotated_types.MinLen):
        return f"of at least {meta.min_length} character(s)"
    return ""


def _did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested params to dotted keys (`train.lr`), as MLflow's compare view wants."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def dump(sections: dict[str, Section]) -> dict[str, Any]:
    """Plain-dict form of validated sections (for JSON lineage files and MLflow params)."""
    return {name: section.model_dump(mode="json") for name, section in sections.items()}
