"""Mean ± std over seeds of every feature list's runs: a ranked table (printed, CSV, Markdown) and a bar chart.
Each row also names its best run (highest F1), the one `predict.py --run` predicts with when it holds best.pth.

    python eval_avg_performance.py --root saved/unimodal               # the unimodal sweep
    python eval_avg_performance.py --root saved/seed0 saved/seed1 --out saved/multimodal_summary

Reads every summary.json below the roots; runs are grouped by feature list and model.
"""
import os

from toolkit.errors import ArgumentParser, cli
from toolkit.io import remove_stale_temps, save_text
from toolkit.results import find_runs, markdown_table, summarize_runs

MODALITY_COLOURS = {"V": "tab:blue", "A": "tab:orange", "T": "tab:green"}


def plot_table(path, table):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from toolkit.io import atomic_path

    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(table) + 2), 4.5))
    colours = [MODALITY_COLOURS.get(m, "tab:purple") for m in table["modality"]]
    ax.bar(range(len(table)), table["f1_mean"], yerr=table["f1_std"], color=colours, capsize=3)
    ax.set_xticks(range(len(table)), table["features"], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("weighted F1 (mean ± std over runs)")
    ax.set_ylim(0, min(1, table["f1_mean"].max() + table["f1_std"].max() + 0.1))
    ax.grid(axis="y", alpha=0.3)
    legend = {m: c for m, c in MODALITY_COLOURS.items() if m in set(table["modality"])}
    if len(legend) < len(set(table["modality"])):
        legend["fused"] = "tab:purple"
    ax.legend(handles=[Patch(color=c, label={"V": "video", "A": "audio", "T": "text"}.get(m, m)) for m, c in legend.items()])
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def build_parser():
    p = ArgumentParser(description=__doc__)
    p.add_argument("--root", nargs="+", default=["saved/unimodal"], help="folders holding run directories")
    p.add_argument("--out", default=None, help="output prefix (default <first root>/unimodal_summary)")
    return p


@cli
def main(argv=None):
    opts = build_parser().parse_args(argv)
    table = summarize_runs(find_runs(opts.root))
    prefix = opts.out or os.path.join(opts.root[0], "unimodal_summary")
    remove_stale_temps(os.path.dirname(os.path.abspath(prefix)))  # left by a run of this script that was killed
    markdown = markdown_table(table)
    save_text(prefix + ".csv", table.to_csv(index=False, float_format="%.6f"))
    save_text(prefix + ".md", markdown)
    plot_table(prefix + ".png", table)
    print(markdown, end="")
    print(f"{len(table)} rows from {int(table['runs'].sum())} runs; wrote {prefix}.csv, .md, .png")
    best = table.iloc[0]
    if best["best_run_model"]:
        print(f"predict with the best run of {best['features']}: python predict.py --run {best['best_run']} --names CLIPS.csv --out DIR")


if __name__ == "__main__":
    main()
