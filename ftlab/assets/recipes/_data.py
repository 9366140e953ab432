# --- reading --dataset the way `ftlab data check` does (copied in; no ftlab import) ----------------


def data_arguments(parser):
    parser.add_argument("--max-length", type=int, default=512, help="token limit per example")
    parser.add_argument("--too-long", choices=TOO_LONG, default="drop", help="drop longer rows, or truncate them")
    parser.add_argument("--test-size", type=float, default=0.1, help="held-out share, evaluated after training")
    return parser


def checked_data(args, tokenizer, kind: str) -> LoadedData:
    """Read --dataset (a file, a save_to_disk folder, or a hub id), check every row, print the report;
    stop when no row can be used. Refused rows are listed with what to fix and left out."""
    source = args.dataset
    if not os.path.exists(source):  # a hub id: download it, then check its rows the same way
        source = load_dataset(source, split=args.split)
    args.max_length = min(args.max_length, context_length(tokenizer, default=args.max_length))  # what the model takes
    data = load(source, tokenizer, kind=kind, max_length=args.max_length, too_long=args.too_long,
                test_size=args.test_size, seed=args.seed)
    print(data.report)
    if not data.report.kept:
        raise SystemExit(f"No usable {kind} in {args.dataset}: fix the problems listed above.")
    return data


def held_out_loss(trainer, data) -> None:
    if len(data.test):
        print(f"held-out loss after training: {trainer.evaluate(data.test)['eval_loss']:.4f} ({len(data.test)} rows)")
# -------------------------------------------------------------------------------------------------
