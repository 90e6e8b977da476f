"""One thin Prefect flow per stage, plus the whole lifecycle.

R-REG-7: importing the flows (the CLI, `leadflow serve`, a worker's flow-run process) masks phones on every log
handler — Prefect's console and API handlers through leadflow/logging.yml, named before Prefect configures its
logging, and every handler present once it has (a worker's process configured Prefect before this import)."""
from leadflow.privacy import install_log_masking

install_log_masking()
import prefect.main  # noqa: E402,F401  (Prefect configures its logging here, with the masking filter)

install_log_masking()
