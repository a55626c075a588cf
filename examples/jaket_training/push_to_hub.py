"""--push_to_hub for every script, as transformers' run_mlm_no_trainer.py does it: the repo is created when the run
starts (a bad id or token fails before hours of training), and the output folder is uploaded when it ends."""

from pathlib import Path

from huggingface_hub import HfApi

# Left out of an upload: resumable training state and tracker logs are not part of a model.
NOT_UPLOADED = ["checkpoint-*", "checkpoint-*/**", "latest", "runs/**"]


def add_hub_arguments(parser):
    parser.add_argument("--push_to_hub", action="store_true", help="upload the output folder to the Hub at the end")
    parser.add_argument(
        "--hub_model_id", default=None, help="the Hub repo to push to, `user/name` (default: the output folder's name)"
    )
    parser.add_argument("--hub_token", default=None, help="a Hub token (default: the one `hf auth login` stored)")


def create_hub_repo(args) -> str | None:
    """The id of the repo the run will push to, created now if it does not exist; None without --push_to_hub."""
    if not args.push_to_hub:
        return None
    name = args.hub_model_id or Path(args.output_dir).name
    return HfApi(token=args.hub_token).create_repo(name, exist_ok=True).repo_id


def push_folder(repo_id: str | None, folder, token: str | None, commit_message: str) -> None:
    if repo_id is not None:
        HfApi(token=token).upload_folder(
            repo_id=repo_id, folder_path=str(folder), commit_message=commit_message, ignore_patterns=NOT_UPLOADED
        )
