"""The tag keys mlproj sets on MLflow runs and model versions: one home, so writers and readers agree.

Runs are searched by these (`mlproj.register`, sweep summaries, resume), so renaming one is a format change.
"""

# A run's identity: what it trained and on what
TASK = "mlproj.task"  # regression | classification | custom
DATA_NAME = "mlproj.data.name"
DATA_TARGET = "mlproj.data.target"
DATA_SOURCE = "mlproj.data.source"
CONFIG_DIGEST = "mlproj.config_digest"  # the resolved recipe's hash: resume=auto finds the run by it
METRIC_DIRECTIONS = "mlproj.metric_directions"  # JSON {metric: min|max} for metrics beyond the built-ins
MODEL_URI = "mlproj.model_uri"  # the logged model (models:/m-<id>)

# Provenance
VERSION = "mlproj.version"
OVERRIDES = "mlproj.overrides"
COMMAND = "mlproj.command"
GIT_COMMIT = "mlflow.source.git.commit"  # MLflow's own key, so its UI shows it
GIT_BRANCH = "mlflow.source.git.branch"  # MLflow's own
GIT_REPO_URL = "mlflow.source.git.repoURL"  # MLflow's own
GIT_DIRTY = "mlproj.git.dirty"
GIT = "mlproj.git"  # "repository", or "none": the working directory is in no git repository
DATASET_SOURCE = "mlproj.source"  # on the logged dataset input

# The run's lifecycle
ERROR = "mlproj.error"  # why a run ended FAILED
UPLOADED = "mlproj.uploaded"  # results sent later by mlproj.upload
CHECKPOINT_DIR = "mlproj.checkpoint_dir"
REPRODUCED_FROM = "mlproj.reproduced_from"  # mlproj.reproduce: the run whose config this run trained again
RESUMED_FROM_EPOCH = "mlproj.resumed_from_epoch"

# Sweeps
PARENT = "mlflow.parentRunId"  # MLflow's own: the UI nests trials under the sweep's run
SWEEP = "mlproj.sweep"  # the sweep's folder, on the parent and its trials
SWEEP_ROLE = "mlproj.sweep.role"  # parent | trial
SWEEP_OVERRIDES = "mlproj.sweep.overrides"
SWEEP_PRUNED = "mlproj.sweep.pruned"
SWEEP_BEST_RUN = "mlproj.sweep.best_run_id"

# The registry gate, on the run and on the model version
DECISION = "mlproj.registry.decision"  # registered | rejected | skipped | deferred | interrupted
DECISION_INTERRUPTED = "interrupted"  # a signal came during the gate (mlproj/registry/interrupted.py)
REASON = "mlproj.registry.reason"
REGISTERED_VERSION = "mlproj.registry.version"
REGISTERED_NAME = "mlproj.registry.model_name"
REGISTERED_BY = "mlproj.registered_by"
VERSION_RUN_ID = "mlproj.run_id"
VERSION_GIT_COMMIT = "mlproj.git_commit"
PRIMARY_METRIC = "mlproj.primary_metric"
PROMOTE = "mlproj.promote"
THRESHOLDS = "mlproj.thresholds"

# mlproj.evaluate: a model on a labelled file
EVALUATED_MODEL = "mlproj.evaluation.model"  # the model URI evaluated
EVALUATED_FILE = "mlproj.evaluation.file"
EVALUATION_OF = "mlproj.evaluation.of_run"  # the run that trained the model

# Baselines and cross-validation
BASELINE = "mlproj.baseline"  # hgb | linear: the scikit-learn model whose metrics are baseline_*
CV_ROLE = "mlproj.cv.role"  # parent | fold
CV_FOLD = "mlproj.cv.fold"  # 0..K-1 on a fold's run
