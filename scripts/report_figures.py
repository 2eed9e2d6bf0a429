"""The figures of each theory demo, drawn from the CSV files its verdict.json lists
(scripts/report.py). One function per demo: figures(run) -> [(png file name, caption)], where
run.csv(name) reads one listed CSV file as {column: numpy array}, run.limit(check id) is a
check's numeric tolerance and run.save(fig, name) writes the figure. A demo whose CSV files do not
hold what a function needs raises KeyError, which the page reports in place of the figure.
"""

import numpy as np
from matplotlib.colors import LogNorm

import report_style as st


# ---- deep_linear_demo ----------------------------------------------------------------------------

def _mode_panels(run, file, prediction, limit_id, title, log_panel=False):
    data, modes = run.csv(file), run.csv("modes.csv")
    strengths = modes["s"]
    rows = 3 if log_panel else 2
    fig, axes = st.figure(rows, 1, height_ratios=[3, 2, 2] if log_panel else [3, 2],
                          height=7.4 if log_panel else 5.6, sharex=True)
    top, residual = axes[0, 0], axes[-1, 0]
    t = data["t"]
    keep = st.thin(len(t))
    errors = []
    for a, s in enumerate(strengths):
        measured, predicted = data[f"u{a}_gd"], data[f"u{a}_theory"]
        for ax in axes[:-1, 0]:
            ax.plot(t, predicted, color=st.color(a), linestyle="-", zorder=2)
            ax.plot(t[keep], measured[keep], color=st.color(a), marker=st.marker(a), linestyle="none",
                    markerfacecolor="none", zorder=3)
        error = np.abs(measured - predicted) / s
        errors.append(error)
        residual.plot(t, st.positive(error), color=st.color(a), label=f"s = {s:g}")
    top.set_ylabel(r"mode strength $u_a(t)$")
    top.set_title(title)
    mode_entries = [(f"mode s = {s:g}", dict(color=st.color(a), marker=st.marker(a), linestyle="-",
                                             markerfacecolor="none")) for a, s in enumerate(strengths)]
    style_entries = [("measured (GD)", st.MEASURED), (prediction, dict(color="0.3", linestyle="-"))]
    # Beside the axes, where no curve runs (the modes' plateaus fill the right of the panel).
    leg = st.style_legend(top, mode_entries, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="colour: mode")
    top.add_artist(leg)
    st.style_legend(top, style_entries, loc="lower left", bbox_to_anchor=(1.01, 0.0))
    if log_panel:
        mid = axes[1, 0]
        everything = np.concatenate([data[c] for c in data if c != "t"])
        st.log_axis(mid, "y", everything)
        mid.set_ylabel(r"$u_a(t)$, log scale")
    limit = run.limit(limit_id)
    st.tolerance_line(residual, limit)
    st.log_axis(residual, "y", np.concatenate(errors + [[limit]]))
    residual.set_ylabel(r"$|u_a - u_a^{\rm theory}| / s_a$")
    residual.set_xlabel(r"$t = \eta k$")
    residual.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def deep_linear(run):
    out = []
    fig = _mode_panels(run, "balanced_depth2.csv", "Saxe's closed form", "depth2_saxe",
                       "Depth 2, balanced aligned init: GD against Saxe's $u(t)$")
    out.append((run.save(fig, "balanced_depth2"),
                "Depth 2, balanced aligned init (u0 = 1e-3, eta = 1e-3): measured mode strengths (markers) "
                "on Saxe's closed form u(t) = s e^{2st} / (e^{2st} - 1 + s/u0) (lines); below, the "
                "relative residual, GD's O(eta) lag behind the flow, with the check's tolerance."))
    fig = _mode_panels(run, "random_depth2.csv", r"Saxe's $u(t)$ from $u_0^{\rm eff}$", "random_saxe",
                       "Depth 2, small random init: stage-like learning", log_panel=True)
    out.append((run.save(fig, "random_depth2"),
                "Depth 2, small random init (hidden width 64): each mode against Saxe's curve started from "
                "its effective initial strength u0_eff = |W1 v + W2^T u|^2 / 4; the log panel shows the "
                "exponential growth phase, strongest mode first."))
    fig = _mode_panels(run, "balanced_depth3.csv", r"RK4 on $\dot u = 3u^{4/3}(s-u)$", "depth3_ode",
                       "Depth 3, balanced aligned init: GD against the mode ODE")
    out.append((run.save(fig, "balanced_depth3"),
                "Depth 3, balanced aligned init (u0 = 1e-2): measured modes on the RK4 solution of "
                "du/dt = 3 u^{4/3} (s - u); below, the relative residual and its tolerance."))

    data = run.csv("balancedness.csv")
    fig, axes = st.figure(2, 1, height_ratios=[3, 2], height=5.2, sharex=True)
    top, bottom = axes[0, 0], axes[1, 0]
    t, keep = data["t"], st.thin(len(data["t"]))
    top.plot(t, st.positive(data["drift_eta2_law"]), color=st.color(1), linestyle="-",
             label=r"law: $\sum_j \eta^2 (G_2^T G_2 - G_1 G_1^T)$")
    top.plot(t[keep], st.positive(data["drift_gd"][keep]), color=st.color(0), marker="o", linestyle="none",
             markerfacecolor="none", label=r"measured: $B(k) - B(0)$")
    st.log_axis(top, "y", np.concatenate([data["drift_gd"], data["drift_eta2_law"]])[1:])
    top.set_ylabel("max-abs entry")
    top.set_title(r"Balancedness $B = W_2^T W_2 - W_1 W_1^T$ under GD (random init)")
    top.legend(loc="lower right")
    limit = run.limit("eta2_law")
    bottom.plot(t, st.positive(data["residual"]), color=st.color(2), label="|measured - law|")
    st.tolerance_line(bottom, limit)
    st.log_axis(bottom, "y", np.concatenate([data["residual"], [limit]]))
    bottom.set_ylabel("max-abs entry")
    bottom.set_xlabel(r"$t = \eta k$")
    bottom.legend(loc="lower right")
    out.append((run.save(fig, "balancedness"),
                "The drift of B from its initial value (markers) is exactly the accumulated eta^2 law (line): "
                "the residual below stays at rounding level, under the absolute tolerance."))
    return out


# ---- ntk_demo ------------------------------------------------------------------------------------

def _width_axis(ax, widths):
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths)
    ax.set_xticklabels([f"{int(w)}" for w in widths])
    ax.minorticks_off()
    ax.set_xlabel("width")


def ntk(run):
    out = []
    data = run.csv("convergence.csv")
    w, per_init, mean = data["width"], data["relative_error_per_init"], data["relative_error_of_mean"]
    # The prediction error ~ C width^-1/2, with C fitted to the per-init errors (slope fixed).
    c = np.exp(np.mean(np.log(per_init) + 0.5 * np.log(w)))
    grid = np.geomspace(w.min(), w.max(), 50)
    fig, axes = st.figure(1, 1, height=3.6)
    ax = axes[0, 0]
    ax.plot(grid, c * grid ** -0.5, color=st.color(0), linestyle="--", label=r"prediction $\propto$ width$^{-1/2}$")
    ax.plot(w, per_init, color=st.color(0), marker="o", linestyle="none", label="measured, per init (mean of 4)")
    ax.plot(w, mean, color=st.color(1), marker="s", linestyle="none", label="measured, mean of 4 kernels")
    limit = run.limit("mean_error")
    if limit is not None and 1024 in w:
        ax.plot([1024], [limit], color="black", marker="v", linestyle="none",
                label=f"tolerance for the mean at width 1024 ({limit:g})")
    _width_axis(ax, w)
    st.log_axis(ax, "y", np.concatenate([per_init, mean, [limit or mean.min()]]))
    ax.set_ylabel(r"$\|K_{\rm emp} - K_\infty\|_F / \|K_\infty\|_F$")
    ax.set_title("Empirical NTK against the infinite-width kernel (ReLU, one hidden layer)")
    ax.legend(loc="lower left")
    out.append((run.save(fig, "convergence"),
                "Relative Frobenius error of the empirical NTK against the analytic kernel: per initialisation "
                "(circles, average over 4 seeds) with the width^-1/2 law fitted through them (dashed), and the "
                "error of the kernel averaged over the 4 seeds (squares) with its tolerance at width 1024."))

    data = run.csv("kernel_change.csv")
    w, change = data["width"], data["relative_change"]
    fig, axes = st.figure(1, 1, height=3.4)
    ax = axes[0, 0]
    grid = np.geomspace(w.min(), w.max(), 50)
    for power, style, label in [(1.0, "--", r"$\propto$ width$^{-1}$: the drift rate (Dyer & Gur-Ari)"),
                                (0.5, ":", r"$\propto$ width$^{-1/2}$: Lee et al.'s bound")]:
        c = np.exp(np.mean(np.log(change) + power * np.log(w)))
        ax.plot(grid, c * grid ** -power, color=st.color(0), linestyle=style, label=label + " (fitted)")
    ax.plot(w, change, color=st.color(0), marker="o", linestyle="none",
            label=r"measured $\|K_T - K_0\|_F / \|K_0\|_F$")
    _width_axis(ax, w)
    st.log_axis(ax, "y", change)
    ax.set_ylabel("relative kernel change")
    ax.set_title("NTK movement during training (checked: slope -1 +- 0.3)")
    ax.legend(loc="lower left")
    out.append((run.save(fig, "kernel_change"),
                "How far the NTK moves during 300 steps of gradient descent, per width (mean of 4 seeds), against "
                "the 1/width rate of the kernel's drift and the width^-1/2 upper bound (both fitted through the "
                "points)."))
    return out


# ---- hessian_demo --------------------------------------------------------------------------------

def hessian(run):
    out = []
    data = run.csv("hessian_density.csv")
    fig, axes = st.figure(1, 1, height=3.4)
    ax = axes[0, 0]
    ax.plot(data["lambda"], st.positive(data["density_init"]), color=st.color(0), linestyle="-", label="at init")
    ax.plot(data["lambda"], st.positive(data["density_trained"]), color=st.color(1), linestyle="--",
            label="after SGD")
    peak = max(np.nanmax(data["density_init"]), np.nanmax(data["density_trained"]))
    ax.set_yscale("log")
    ax.set_ylim(peak * 1e-6, peak * 3)
    st.log_axis(ax, "y", [peak * 1e-6, peak * 3])
    ax.set_xlabel(r"eigenvalue $\lambda$")
    ax.set_ylabel("spectral density")
    ax.set_title("SLQ spectral density of the loss Hessian (64-32-10 tanh MLP, digits)")
    ax.legend(loc="upper right")
    out.append((run.save(fig, "hessian_density"),
                "Stochastic Lanczos quadrature estimate of the Hessian's eigenvalue density, Gaussian-smoothed, "
                "before and after training (a measurement; its mean is checked against tr(H)/P below)."))

    data = run.csv("hessian_top_eigenvalues.csv")
    fig, axes = st.figure(1, 2, width=7.5, height=3.2)
    ax, res = axes[0, 0], axes[0, 1]
    i = data["index"]
    for j, (state, label) in enumerate([("init", "at init"), ("trained", "after SGD")]):
        ax.plot(i, data[f"lambda_{state}"], color=st.color(j), marker=st.marker(j), linestyle="-", label=label)
        res.plot(i, st.positive(data[f"residual_{state}"]), color=st.color(j), marker=st.marker(j), linestyle="-",
                 label=label)
    for a in (ax, res):
        a.set_xticks(i)
    ax.set_xlabel("index")
    ax.set_ylabel("eigenvalue")
    ax.set_title("Top 10 eigenvalues (Lanczos)")
    ax.legend()
    st.log_axis(res, "y", np.concatenate([data["residual_init"], data["residual_trained"]]))
    res.set_xlabel("index")
    res.set_ylabel(r"residual $\|Hv - \lambda v\|$")
    res.set_title("Their Ritz residuals")
    out.append((run.save(fig, "hessian_top_eigenvalues"),
                "The top eigenvalues of the 64-32-10 net's Hessian (2410 parameters) before and after training, "
                "and the residual norm of each Ritz pair."))

    spectrum = run.csv("hessian_check_spectrum.csv")
    checks = [("hessian_check.csv", "MLP 64-8-10", "lanczos_mlp"),
              ("hessian_check_batchnorm.csv", "BatchNorm net", "lanczos_batchnorm")]
    fig, axes = st.figure(1, 2, width=8.5, height=3.6)
    ax, err = axes[0, 0], axes[0, 1]
    rank = spectrum["rank_from_top"]
    mlp = run.csv("hessian_check.csv")
    for j, state in enumerate(["init", "trained"]):
        ax.plot(rank, spectrum[f"lambda_dense_{state}"], color=st.color(j), linestyle="-",
                label=f"dense eigh, {'at init' if j == 0 else 'trained'}")
        rows = mlp["trained"] == j
        ax.plot(mlp["rank_from_top"][rows], mlp["lambda_lanczos"][rows], color=st.color(j), marker=st.marker(j),
                linestyle="none", markerfacecolor="none", markersize=6,
                label=f"Lanczos, {'at init' if j == 0 else 'trained'}")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("rank from the top")
    ax.set_ylabel(r"eigenvalue (symlog, linear within $\pm 10^{-3}$)")
    ax.set_title(f"Whole spectrum, MLP 64-8-10 (P = {len(rank)})")
    ax.legend(loc="upper right", fontsize=7)
    values = []
    for k, (file, label, _) in enumerate(checks):
        d = run.csv(file)
        for j, state in enumerate(["at init", "trained"]):
            rows = d["trained"] == j
            r = d["rank_from_top"][rows]
            position = np.where(r <= 5, r, 10 - (r.max() - r))  # top 1..5, then ranks P-4..P as 6..10
            e = np.abs(d["lambda_lanczos"][rows] - d["lambda_dense"][rows]) / np.abs(d["lambda_dense"][rows])
            values.append(e)
            err.plot(position + (k * 2 + j - 1.5) * 0.12, st.positive(e, 1e-17), color=st.color(2 * k + j),
                     marker=st.marker(2 * k + j), linestyle="none", label=f"{label}, {state}")
    limit = run.limit(checks[0][2])
    st.tolerance_line(err, limit)
    st.log_axis(err, "y", np.concatenate(values + [[limit, 1e-17]]))
    err.set_xticks(range(1, 11))
    err.set_xticklabels(["1", "2", "3", "4", "5", "P-4", "P-3", "P-2", "P-1", "P"], fontsize=7)
    err.set_xlabel("rank from the top")
    err.set_ylabel(r"$|\lambda_{\rm Lanczos} - \lambda_{\rm dense}| / |\lambda_{\rm dense}|$")
    err.set_title("Lanczos against the dense spectrum")
    if limit is not None:
        err.set_ylim(top=limit * 1e5)  # room for the legend above the tolerance line
    err.legend(loc="upper center", ncol=2, fontsize=7)
    out.append((run.save(fig, "hessian_check"),
                "Left: the exact spectrum of a 610-parameter net's Hessian (dense, one HVP per column, then "
                "LAPACK) with Lanczos' top and bottom 5 eigenvalues on it. Right: their relative error for this "
                "net and a BatchNorm net in training mode, with the check's tolerance (values below 1e-17, "
                "exact agreement included, are drawn at 1e-17)."))
    return out


# ---- symmetry_demo -------------------------------------------------------------------------------

NETS = {"softmax": "softmax classifier 64-10", "batchnorm": "64-16 Linear + BatchNorm(eps 0) + ReLU + 16-10",
        "mlp": "ReLU MLP 64-16-16-10"}
OPTIMIZERS = {"sgd": ("SGD lr 0.05", False), "sgd_wd": ("SGD lr 0.05, wd 0.01", False),
              "momentum": ("SGD lr 0.01, momentum 0.9", True),
              "momentum_wd": ("SGD lr 0.01, momentum 0.9, wd 0.01", True)}

# The exact discrete law of each quantity (Note [Exact discrete laws] in theory/symmetry.cpp).
LAWS = {
    ("translation", False): r"$Q_{k+1} = (1 - \eta\lambda)\,Q_k$",
    ("translation", True): r"$Q_{k+1} = (1 + \beta - \eta\lambda)\,Q_k - \beta\,Q_{k-1}$",
    ("scale", False): r"$Q_{k+1} = (1 - \eta\lambda)^2 Q_k + \eta^2 |g_k|^2$",
    ("scale", True): r"$Q_{k+1} = Q_k - 2\eta W_k + \eta^2 |b_k|^2$",
    ("rescale", False): r"$Q_{k+1} = (1 - \eta\lambda)^2 Q_k + \eta^2 (|g_{\rm out}|^2 - |g_{\rm in}|^2)$",
    ("rescale", True): r"$Q_{k+1} = Q_k - 2\eta W_k + \eta^2 (|b_{\rm out}|^2 - |b_{\rm in}|^2)$",
}
MOMENTUM_TERMS = (" With momentum beta, weight decay lambda and buffers b: W_k = beta Z_k + lambda Q_k and "
                  "Z_{k+1} = W_k - eta |b_k|^2-terms, with Z the symmetrised product of parameters and buffer "
                  "(Note [Exact discrete laws] in theory/symmetry.cpp).")
PLAIN_SGD = (" Without weight decay or momentum, Kunin's flow integrated with the measured gradients is the "
             "exact law itself, so the two error curves coincide.")
QUANTITIES = {"translation": r"$Q_j = \sum_c W_{cj}$", "scale": r"$Q_c = |W_{c,:}|^2 + b_c^2$",
              "rescale": r"$Q_i = |W_{\rm out}[:, i]|^2 - |W_{\rm in}[i, :]|^2 - b_i^2$"}


def _group_label(group):
    """rescale_layers_0_layers_2 -> rescale layers.0 -> layers.2"""
    words = group.split("_")
    layers = [f"{words[i]}.{words[i + 1]}" for i in range(1, len(words) - 1, 2)]
    return f"{words[0]} " + " -> ".join(layers)


def _groups(columns):
    return [c[: -len("_exact_err")] for c in columns if c.endswith("_exact_err")]


def _symmetry_run(run, key, net, optimizer, momentum):
    data = run.csv(f"{key}.csv")
    groups = _groups(data)
    fig, axes = st.figure(2, len(groups), height_ratios=[3, 2], width=max(4.2 * len(groups) + 0.6, 6.0),
                          height=6.0)
    step = data["step"]
    keep = st.thin(len(step), 30)
    limit = run.limit(net)
    for g, group in enumerate(groups):
        top, bottom = axes[0, g], axes[1, g]
        symmetry = group.split("_")[0]
        units = sorted({c[len(group) + 2:].split("_")[0] for c in data if c.startswith(group + "_u")},
                       key=int)
        for u, unit in enumerate(units):
            prefix = f"{group}_u{unit}_"
            top.plot(step, data[prefix + "exact"], color=st.color(u), linestyle="-", zorder=2)
            top.plot(step, data[prefix + "continuous"], color=st.color(u), linestyle=":", linewidth=1.8, zorder=2)
            top.plot(step[keep], data[prefix + "measured"][keep], color=st.color(u), marker=st.marker(u),
                     linestyle="none", markerfacecolor="none", zorder=3)
        top.set_title(f"{_group_label(group)}\n{QUANTITIES[symmetry]}\nexact law {LAWS[(symmetry, momentum)]}",
                      fontsize=8.5)
        top.set_ylabel(f"{symmetry} quantity Q per unit", fontsize=8)
        exact, flow = data[f"{group}_exact_err"][1:], data[f"{group}_continuous_err"][1:]
        # Kunin's flow on top: without weight decay or momentum it is the exact law itself.
        bottom.plot(step[1:], st.positive(exact, 1e-17), color=st.color(0), linestyle="-",
                    label="exact law (checked)")
        bottom.plot(step[1:], st.positive(flow, 1e-17), color=st.color(4), linestyle=":", linewidth=1.8,
                    label="Kunin's flow (reported)")
        st.tolerance_line(bottom, limit)
        st.log_axis(bottom, "y", np.concatenate([exact, flow, [limit, 1e-17]]))
        bottom.set_ylabel("max |Q - prediction| / magnitude", fontsize=8)
        bottom.set_xlabel("step k")
        if g == 0:
            bottom.legend(loc="center right", fontsize=7)
            st.style_legend(top, [("measured", st.MEASURED), ("exact law", dict(color="0.3", linestyle="-")),
                                  ("Kunin's continuous flow", dict(color="0.3", linestyle=":", linewidth=1.8))],
                            loc="best", fontsize=7)
    fig.suptitle(f"{NETS[net]}\n{optimizer}: the 4 units whose Q moves most (colours)", fontsize=10)
    return fig


def symmetry(run):
    out = []
    # Overview: the worst exact-law error of every run over the steps.
    fig, axes = st.figure(1, 1, height=3.8, width=7.5)
    ax = axes[0, 0]
    values = []
    for n, net in enumerate(NETS):
        for o, (opt, (_, momentum)) in enumerate(OPTIMIZERS.items()):
            data = run.csv(f"{net}_{opt}.csv")
            worst = np.max([data[f"{g}_exact_err"] for g in _groups(data)], axis=0)[1:]
            values.append(worst)
            ax.plot(data["step"][1:], st.positive(worst, 1e-17), color=st.color(n),
                    linestyle=["-", "--", ":", "-."][o], label=f"{net}, {opt.replace('_', '+')}")
    limit = run.limit("softmax")
    st.tolerance_line(ax, limit)
    st.log_axis(ax, "y", np.concatenate(values + [[limit, 1e-17]]))
    ax.set_xlabel("step k")
    ax.set_ylabel("max |Q - exact law| / magnitude")
    ax.set_title("Exact discrete laws: worst relative error over layers and units, every run")
    ax.legend(ncol=3, fontsize=7, loc="upper left")
    ax.set_ylim(top=limit * 1e3 if limit else None)
    out.append((run.save(fig, "exact_law_error"),
                "The worst relative error of the exact discrete law over every tracked unit, per run (colour: "
                "net, line style: optimizer), against the 1e-12 tolerance; zeros are drawn at 1e-17."))
    for net in NETS:
        for opt, (title, momentum) in OPTIMIZERS.items():
            key = f"{net}_{opt}"
            fig = _symmetry_run(run, key, net, title, momentum)
            out.append((run.save(fig, key),
                        f"{NETS[net]} trained by {title}: the conserved (or exactly drifting) quantity of the 4 "
                        "units that move most, measured (markers) on the exact law (solid) and Kunin's continuous "
                        "prediction (dotted); below, both predictions' relative errors and the tolerance."
                        + (MOMENTUM_TERMS if momentum else "") + (PLAIN_SGD if opt == "sgd" else "")))
    return out


# ---- train_digits --------------------------------------------------------------------------------

def _learning_curve(run, caption):
    data = run.csv("learning_curve.csv")
    fig, axes = st.figure(1, 2, width=7.5, height=3.0)
    loss, acc = axes[0, 0], axes[0, 1]
    loss.plot(data["epoch"], data["train_loss"], color=st.color(0), marker="o", label="training loss")
    st.log_axis(loss, "y", data["train_loss"])
    loss.set_xlabel("epoch")
    loss.set_ylabel("cross-entropy (training set)")
    loss.set_title("Training loss")
    acc.plot(data["epoch"], data["test_accuracy"], color=st.color(1), marker="s", label="test accuracy")
    target = run.limit("accuracy")
    st.tolerance_line(acc, target, label=f"target {target:g}" if target is not None else None, log_headroom=False)
    acc.set_xlabel("epoch")
    acc.set_ylabel("accuracy (held-out 20%)")
    acc.set_title("Test accuracy")
    acc.legend(loc="lower right")
    return [(run.save(fig, "learning_curve"), caption)]


def train_digits(run):
    return _learning_curve(run, "MLP 64-128-10 on the digits: training loss (left, log scale) and held-out accuracy "
                                "(right) per epoch, with the accuracy target.")


def cnn_digits(run):
    return _learning_curve(run, "A CNN (three 3x3 convolutions, average pooling, linear readout) on the digits and "
                                "their one-pixel shifts: training loss (left, log scale) and held-out accuracy "
                                "(right) per epoch, with the accuracy target.")


# ---- cntk_demo -----------------------------------------------------------------------------------

def cntk(run):
    out = []
    data = run.csv("convergence.csv")
    c = data["channels"]
    per_init, mean, spread = (data["relative_error_per_init"], data["relative_error_of_mean"],
                              data["relative_spread_over_inits"])
    scale = np.exp(np.mean(np.log(spread) + 0.5 * np.log(c)))
    grid = np.geomspace(c.min(), c.max(), 50)
    fig, axes = st.figure(1, 1, height=3.6)
    ax = axes[0, 0]
    ax.plot(grid, scale * grid ** -0.5, color=st.color(2), linestyle="--",
            label=r"channels$^{-1/2}$ (asymptotic law, fitted)")
    ax.plot(c, spread, color=st.color(2), marker="D", linestyle="none", label="spread over inits")
    ax.plot(c, per_init, color=st.color(0), marker="o", linestyle="none", label="error per init")
    ax.plot(c, mean, color=st.color(1), marker="s", linestyle="none", label="error of the mean kernel")
    limit = run.limit("mean_kernel")
    if limit is not None:
        ax.plot([c.max()], [limit], color="black", marker="v", linestyle="none",
                label=f"tolerance for the mean at {int(c.max())} channels ({limit:g})")
    _width_axis(ax, c)
    ax.set_xlabel("channels")
    st.log_axis(ax, "y", np.concatenate([per_init, mean, spread]))
    ax.set_ylabel(r"relative Frobenius distance to $K_\infty$")
    ax.set_title("Empirical CNTK against the analytic CNTK (3 conv layers, GAP)")
    ax.legend(loc="lower left")
    out.append((run.save(fig, "convergence"),
                "Empirical NTK of finite CNNs with three convolutions (NTK parameterisation, 24 digits) against "
                "the analytic CNTK-GAP: "
                "the error per initialisation, the spread of the kernels over initialisations with the "
                "channels^-1/2 law fitted through it, and the error of the kernel averaged over the initialisations."))
    data = run.csv("convergence_1_layer.csv")
    c, per_init = data["channels"], data["relative_error_per_init"]
    scale = np.exp(np.mean(np.log(per_init) + 0.5 * np.log(c)))
    grid = np.geomspace(c.min(), c.max(), 50)
    fig, axes = st.figure(1, 1, height=3.4)
    ax = axes[0, 0]
    ax.plot(grid, scale * grid ** -0.5, color=st.color(0), linestyle="--", label=r"prediction $\propto$ channels$^{-1/2}$")
    ax.plot(c, per_init, color=st.color(0), marker="o", linestyle="none", label="measured, error per init (12 inits)")
    _width_axis(ax, c)
    ax.set_xlabel("channels")
    st.log_axis(ax, "y", per_init)
    ax.set_ylabel(r"$\|K_{\rm emp} - K_\infty\|_F / \|K_\infty\|_F$")
    ax.set_title("One convolution, GAP readout: the channels$^{-1/2}$ law")
    ax.legend(loc="lower left")
    out.append((run.save(fig, "convergence_1_layer"),
                "With one convolution each kernel is an average over independent channels: the error per "
                "initialisation against the analytic CNTK follows channels^-1/2 (dashed, fitted)."))
    data = run.csv("kernel_regression.csv")
    names = ["CNTK-GAP", "CNTK-flatten", "FC NTK"]
    acc = data["test_accuracy"]
    fig, axes = st.figure(1, 1, height=3.0)
    ax = axes[0, 0]
    ax.bar(names[: len(acc)], acc, color=[st.color(i) for i in range(len(acc))])
    for i, a in enumerate(acc):
        ax.text(i, a, f"{a:.4f}", ha="center", va="bottom")
    ax.set_ylim(max(0.0, acc.min() - 0.05), 1.0)
    ax.set_ylabel("test accuracy (797 digits)")
    ax.set_title("Kernel regression on 1000 training digits")
    out.append((run.save(fig, "kernel_regression"),
                "Test accuracy of kernel regression to one-hot labels with the analytic CNTK (global average and "
                "flatten readouts) and the fully connected ReLU NTK of the same depth."))
    return out


# ---- ntk_spectrum_demo ---------------------------------------------------------------------------

def ntk_spectrum(run):
    subset = run.csv("subset_spectrum.csv")
    top = run.csv("top_eigenvalues.csv")
    mercer = run.csv("mercer.csv")
    fig, axes = st.figure(1, 1, height=3.8)
    ax = axes[0, 0]
    ax.plot(subset["index"], subset["eigenvalue_over_n"], color=st.color(0),
            label="all eigenvalues / n, 2000-point subset (eigh of the formed kernel)")
    ax.plot(top["index"], top["eigenvalue_over_n"], color=st.color(1), marker="o", markersize=4, linestyle="none",
            label="top 20 / n on all points (Lanczos on K v, kernel never formed)")
    # The infinite-width prediction: mu_k repeated N(d, k) times, as a staircase.
    start = 1
    for k, (mu, mult) in enumerate(zip(mercer["mu"], mercer["multiplicity"])):
        if mu <= 0:
            continue
        end = start + int(mult)
        ax.plot([start, end - 1], [mu, mu], color="black", linestyle="--", linewidth=1.2,
                label=r"Mercer eigenvalue $\mu_k$ of the analytic NTK, $N(d, k)$ times" if k == 0 else None)
        ax.text(end - 1, mu, f" k={k}", va="center", fontsize=8)
        start = end
    ax.set_xscale("log")
    st.log_axis(ax, "y", np.concatenate([subset["eigenvalue_over_n"][subset["eigenvalue_over_n"] > 0],
                                         top["eigenvalue_over_n"]]))
    ax.set_xlabel("eigenvalue index")
    ax.set_ylabel("eigenvalue / n")
    ax.set_title("NTK spectrum of a ReLU MLP on the sphere (d = 19, one hidden layer of 512)")
    ax.legend(loc="lower left")
    return [(run.save(fig, "spectrum"),
             "Eigenvalue decay of the empirical NTK divided by the number of points: the whole spectrum of a "
             "2000-point subset (eigh), the top 20 on all points from Lanczos on the kernel-free product K v, and "
             "the infinite-width prediction (dashed): the Mercer eigenvalue of each spherical-harmonic degree k, "
             "repeated as often as that degree has harmonics.")]


# ---- similarity_demo -----------------------------------------------------------------------------

def similarity(run):
    pairs = run.csv("layer_pairs.csv")
    layers = int(round(np.sqrt(len(pairs["cka"]))))
    ticks = np.arange(layers)
    panels = [("cka", "CKA, net A against net B"), ("cka_within_a", "CKA, net A against itself"),
              ("mean_cca", "mean CCA, net A against net B"), ("mean_cca_200", "mean CCA on 200 digits")]
    fig, axes = st.figure(2, 2, height=7.0)
    for ax, (column, title) in zip(axes.flat, panels):
        matrix = pairs[column].reshape(layers, layers)
        image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis", origin="upper")
        ax.grid(False)
        for i in ticks:
            for j in ticks:
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=5.5,
                        color="white" if matrix[i, j] < 0.7 else "black")
        if column in ("cka", "mean_cca"):  # each row's best match (on 200 digits all CCA entries are 1)
            best = matrix.argmax(axis=1)
            ax.plot(best, ticks, color="red", marker="s", markerfacecolor="none", linestyle="none", markersize=11)
        ax.set_xticks(ticks, [str(t + 1) for t in ticks])
        ax.set_yticks(ticks, [str(t + 1) for t in ticks])
        ax.set_xlabel("hidden layer of net B" if column != "cka_within_a" else "hidden layer of net A")
        ax.set_ylabel("hidden layer of net A")
        ax.set_title(title)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    out = [(run.save(fig, "layer_similarity"),
            "Similarity of the eight hidden layers of two MLPs trained on the digits from different seeds, on "
            "all 1797 digits (a red square marks each row's most similar layer of net B). CKA is highest near the diagonal; "
            "from the second or third layer on, each net's layers are nearly alike to CKA (top right), so the "
            "best match among them is decided by small differences. Mean CCA peaks at the first layer for every "
            "row, and on 200 digits, fewer than the 256 features, it is 1 for every pair.")]
    base = run.csv("baselines.csv")
    fig, axes = st.figure(1, 1, height=3.2)
    ax = axes[0, 0]
    ax.plot(base["layer"], base["cka_matched"], color=st.color(0), marker="o", label="CKA, corresponding layers")
    ax.plot(base["layer"], base["cka_rows_shuffled"], color=st.color(1), marker="s",
            label="CKA, net B's rows shuffled (unrelated examples)")
    ax.plot(base["layer"], base["gaussian_chance"], color="black", linestyle="--",
            label="independent Gaussian features: p / (n + p)")
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("hidden layer")
    ax.set_ylabel("linear CKA")
    ax.set_title("Corresponding layers against baselines")
    ax.legend(loc="center right")
    out.append((run.save(fig, "baselines"),
                "Linear CKA of corresponding layers of the two nets, against two baselines: the same pair with one "
                "net's examples shuffled, and the chance level p / (n + p) of independent isotropic Gaussian "
                "features of the same width. The shuffled pairs fall far below that level: trained features "
                "concentrate on a few directions, and the chance level of CKA grows with the number of "
                "directions that carry variance."))
    return out


# ---- lazy_training_demo --------------------------------------------------------------------------

def lazy_training(run):
    sweeps = [("relu", "ReLU"), ("gelu", "GELU")]
    fig, axes = st.figure(1, 2, height=3.6, width=9.0)
    for column, (ax, label, title) in enumerate([
            (axes[0, 0], "weight_distance", r"distance travelled $|w(T) - w_0|$"),
            (axes[0, 1], "linearisation_gap", r"$\max_t$ rms $|g - g_{\rm lin}|$ on test digits")]):
        for i, (name, pretty) in enumerate(sweeps):
            data = run.csv(f"{name}_scaling.csv")
            alpha, value = data["alpha"], data[label]
            ax.plot(alpha, value, color=st.color(i), marker=st.marker(i), linestyle="none", label=pretty)
            anchor = np.argmin(np.abs(alpha - 10))
            ax.plot(alpha, value[anchor] * 10 / alpha, color=st.color(i), linestyle="--", linewidth=1,
                    label=r"$\propto 1/\alpha$" if i == 1 else None)
            if name == "relu" and label == "linearisation_gap":
                ax.plot(alpha, value[anchor] * np.sqrt(10 / alpha), color=st.color(i), linestyle=":", linewidth=1,
                        label=r"$\propto \alpha^{-1/2}$ (ReLU kinks)")
        ax.set_xscale("log")
        st.log_axis(ax, "y")
        ax.set_xlabel(r"scale $\alpha$")
        ax.set_title(title)
        ax.legend(loc="lower left")
    out = [(run.save(fig, "scaling"),
            "Two-layer nets (64-512-1) recentred and scaled by alpha, trained by gradient descent on the loss "
            "divided by alpha squared: the weights travel 1/alpha for both activations (left). The largest gap "
            "to the linearised model falls like 1/alpha for the smooth GELU; for ReLU, units whose "
            "pre-activation crosses its kink add rare errors that do not shrink with alpha, and the gap falls "
            "more slowly and unevenly (right).")]
    fig, axes = st.figure(1, 2, height=3.6, width=9.0)
    for i, (name, pretty) in enumerate(sweeps):
        ax = axes[0, i]
        data = run.csv(f"{name}_test_predictions.csv")
        kernel = data["kernel_regression"]
        ax.plot(kernel, data["net_at_alpha_max"], color=st.color(i), marker="o", markersize=3, linestyle="none",
                label="trained net at the largest alpha")
        lo, hi = kernel.min(), kernel.max()
        ax.plot([lo, hi], [lo, hi], color="black", linestyle="--", linewidth=1, label="equality")
        ax.set_xlabel("kernel regression with the NTK at initialisation")
        ax.set_ylabel("net")
        ax.set_title(f"{pretty}: predictions on 256 test digits")
        ax.legend(loc="upper left")
    out.append((run.save(fig, "kernel_limit"),
                "Test predictions of the net trained at the largest alpha against kernel regression with its NTK "
                "at initialisation after the same number of gradient-descent steps (ntk_regression, discrete)."))
    return out


# ---- landscape_demo ------------------------------------------------------------------------------

def _grid(data, x, y):
    """Long-format columns (x, y, loss), x outer, as axes xs, ys and losses [len(ys), len(xs)]."""
    xs, ys = np.unique(data[x]), np.unique(data[y])
    return xs, ys, data["loss"].reshape(len(xs), len(ys)).T


def _loss_contours(ax, xs, ys, losses):
    """Filled contours of a loss surface on log-spaced levels (losses span decades near a minimum)."""
    levels = np.geomspace(np.nanmin(losses), np.nanmax(losses), 16)
    filled = ax.contourf(xs, ys, losses, levels=levels, norm=LogNorm(), cmap="viridis")
    ax.contour(xs, ys, losses, levels=levels, colors="white", linewidths=0.4, alpha=0.6)
    return filled


def landscape(run):
    out = []
    fig, axes = st.figure(1, 2, width=9.0, height=3.9)
    ax, pc = axes[0, 0], axes[0, 1]
    xs, ys, losses = _grid(run.csv("landscape_surface.csv"), "alpha", "beta")
    filled = _loss_contours(ax, xs, ys, losses)
    fig.colorbar(filled, ax=ax, label="training loss", format="%.2g")
    ax.plot([0], [0], marker="*", color="white", markersize=10, markeredgecolor="black", linestyle="none")
    ax.set_xlabel(r"$\alpha$ (filter-normalised direction $\delta$)")
    ax.set_ylabel(r"$\beta$ (filter-normalised direction $\eta$)")
    ax.set_title(r"$L(\theta^* + \alpha\delta + \beta\eta)$")
    ax.set_aspect("equal")
    ax.grid(False)

    xs, ys, losses = _grid(run.csv("landscape_pca_surface.csv"), "pc1", "pc2")
    filled = _loss_contours(pc, xs, ys, losses)
    fig.colorbar(filled, ax=pc, label="training loss", format="%.2g")
    path = run.csv("landscape_trajectory.csv")
    ratios = run.csv("landscape_pca.csv")["explained_ratio"]
    pc.plot(path["pc1"], path["pc2"], color=st.color(1), marker="o", markersize=3, label="trajectory (per epoch)")
    pc.plot(path["pc1"][:1], path["pc2"][:1], marker="s", color=st.color(1), markersize=7, linestyle="none",
            label="initialisation")
    pc.plot([0], [0], marker="*", color="white", markersize=10, markeredgecolor="black", linestyle="none",
            label="final point (origin)")
    pc.set_xlabel(f"PC 1 ({100 * ratios[0]:.1f}% of the variance)")
    pc.set_ylabel(f"PC 2 ({100 * ratios[1]:.1f}%)")
    pc.set_title("The PCA plane of the training trajectory")
    pc.legend(loc="best", fontsize=7)
    pc.grid(False)
    out.append((run.save(fig, "landscape_planes"),
                "Left: the training loss of the 64-256-256-10 tanh MLP on all digits on a 2-D slice through the "
                "trained solution (star) along two Gaussian directions, each filter rescaled to the norm of the "
                "solution's filter (Li et al. 2018). Right: the loss on the plane of the trajectory's top two "
                "principal directions (of theta_t - theta_final), with the trajectory projected onto it; the "
                "percentages are the explained-variance ratios. Contour levels are log-spaced."))

    slices = run.csv("landscape_batchnorm_slices.csv")
    path = run.csv("landscape_interpolation.csv")
    fig, axes = st.figure(1, 3, width=10.5, height=3.3)
    for k, (kind, title) in enumerate([("filter", "filter-normalised direction"), ("raw", "unnormalised direction")]):
        ax = axes[0, k]
        for j, c in enumerate(["1", "0.1", "10"]):
            ax.plot(slices["alpha"], slices[f"{kind}_c{c}"], color=st.color(j),
                    linestyle=["-", "--", ":"][j], linewidth=[2.4, 1.6, 1.6][j], label=f"layer scaled by c = {c}")
        ax.set_xlabel(r"$\alpha$")
        ax.set_ylabel("training loss")
        ax.set_title(f"BatchNorm net, {title}")
        ax.legend(fontsize=7)
    ax = axes[0, 2]
    ax.plot(path["alpha"], path["loss"], color=st.color(0), marker="o", markersize=3)
    ax.set_yscale("log")
    st.log_axis(ax, "y", path["loss"])
    ax.axvline(0, color="gray", linewidth=0.8)
    ax.axvline(1, color="gray", linewidth=0.8)
    ax.set_xlabel(r"$\alpha$ (0: initialisation, 1: trained)")
    ax.set_ylabel("training loss")
    ax.set_title(r"$L((1 - \alpha)\,\theta_0 + \alpha\,\theta^*)$")
    out.append((run.save(fig, "landscape_slices"),
                "Left and middle: 1-D slices through a trained 64-128-BatchNorm(eps 0)-tanh-10 net whose first "
                "layer is rescaled by c; the function is the same for every c. Along the filter-normalised "
                "direction the three slices coincide (checked to 1e-10 of their range); along one fixed "
                "unnormalised direction they do not (checked to differ by more than 10%). Right: the loss on "
                "the straight line from the initialisation to the trained MLP."))
    return out


# ---- implicit_bias_demo --------------------------------------------------------------------------

def implicit_bias(run):
    out = []
    # Minimum norm: distance to the prediction, and the null-space part, along GD.
    fig, axes = st.figure(2, 1, height=5.6)
    top, bottom = axes[0, 0], axes[1, 0]
    runs = [("min_norm_synthetic.csv", "synthetic 20 x 100, from 0", "null_ratio"),
            ("min_norm_digits.csv", "digits 50 x 64, from 0", "null_ratio"),
            ("min_norm_w0.csv", r"synthetic, from $w_0$ (target $X^+y + P_{\rm null} w_0$)", "null_drift")]
    errors, nulls = [], []
    for i, (file, label, null_column) in enumerate(runs):
        try:
            data = run.csv(file)
        except KeyError:  # --quick leaves the digits out
            continue
        k = np.maximum(data["k"], 1)
        top.plot(k, st.positive(data["rel_error"]), color=st.color(i), label=label)
        bottom.plot(k, st.positive(data[null_column]), color=st.color(i), label=label)
        errors.append(data["rel_error"])
        nulls.append(data[null_column])
    top.set_xscale("log")
    bottom.set_xscale("log")
    st.tolerance_line(top, run.limit("min_norm"))
    st.log_axis(top, "y", np.concatenate(errors + [[run.limit("min_norm")]]))
    top.set_ylabel(r"$|w_k - w_\infty| / |w_\infty|$")
    top.set_title("Least squares, n < d: GD converges to the minimum-norm solution")
    top.legend(loc="lower left", fontsize=8)
    st.tolerance_line(bottom, run.limit("row_space"), label="1e-13 (synthetic tolerance)")
    st.log_axis(bottom, "y", np.concatenate(nulls + [[run.limit("row_space")]]))
    bottom.set_ylabel(r"$|P_{\rm null}(w_k - w_0)|$, relative")
    bottom.set_xlabel("GD step k")
    bottom.legend(loc="upper left", fontsize=8)
    out.append((run.save(fig, "min_norm"),
                "Top: relative distance of the trained weights to x^+ y (+ P_null w0 from a nonzero start). "
                "Bottom: the part of w_k outside the row space of x, zero up to rounding; on digits it grows "
                "with the number of steps (coherent rounding of ~1e5 weight updates), within K eps / 2."))

    # Early stopping against ridge.
    risk, shrink, gd = run.csv("ridge_risk.csv"), run.csv("shrinkage_ratio.csv"), run.csv("gd_vs_flow.csv")
    fig, axes = st.figure(3, 1, height=8.0)
    a, b, c = axes[0, 0], axes[1, 0], axes[2, 0]
    a.plot(shrink["x"], shrink["ratio"], color=st.color(0), label=r"$(1 - e^{-x})(1 + x)/x$")
    a.axhline(run.limit("mode_gains"), color="black", linestyle="-.", linewidth=1.0, label="bound 1.2985")
    a.set_xscale("log")
    a.set_xlabel(r"$x = t\sigma_i$")
    a.set_ylabel("gain ratio GF / ridge")
    a.set_title(r"Early stopping at t against ridge with $\lambda = 1/t$")
    a.legend(loc="upper right", fontsize=8)
    b.plot(risk["t"], risk["ratio"], color=st.color(1), label="Risk(gradient flow, t) / Risk(ridge, 1/t)")
    b.plot(gd["t"], gd["risk_gd"] / gd["risk_ridge"], color=st.color(2), marker="o", linestyle="none",
           markerfacecolor="none", label="trained GD (through nn) / ridge")
    b.axhline(run.limit("risk_ratio"), color="black", linestyle="-.", linewidth=1.0, label="bound 1.6862")
    b.set_xscale("log")
    b.set_ylabel("risk ratio")
    b.legend(loc="upper left", fontsize=8)
    c.plot(gd["t"], st.positive(gd["gap"]), color=st.color(0), marker="o", markerfacecolor="none",
           label=r"$|w_{\rm GD}(t) - w_{\rm GF}(t)|$")
    c.plot(gd["t"], gd["bound"], color="black", linestyle="-.", label=r"$2\eta\sigma_{\max}|w_{\rm GF}(t)|$")
    c.set_xscale("log")
    st.log_axis(c, "y", np.concatenate([gd["gap"], gd["bound"]]))
    c.set_xlabel(r"$t = \eta k$")
    c.set_ylabel("distance")
    c.legend(loc="lower right", fontsize=8)
    out.append((run.save(fig, "early_stopping"),
                "Top: the per-mode gain ratio of gradient flow at t to ridge at 1/t, at most 1.2985. Middle: the "
                "estimation risk ratio along t, closed form (line) and the estimator GD actually trained "
                "(markers), under the 1.6862 bound of Ali, Kolter and Tibshirani. Bottom: GD's first-order lag "
                "behind the flow, under the checked bound."))

    # Logistic regression: direction, offset and loss.
    path, svm = run.csv("logistic_path.csv"), run.csv("logistic_svm.csv")
    fig, axes = st.figure(3, 1, height=8.0, sharex=True)
    a, b, c = axes[0, 0], axes[1, 0], axes[2, 0]
    k = path["k"]
    a.plot(k, path["angle"] * np.log(np.maximum(k, 2)), color=st.color(0), label=r"measured angle $\times \ln k$")
    a.plot(k, path["angle_predicted"] * np.log(np.maximum(k, 2)), color="black", linestyle="--",
           label=r"$\hat w \ln k + \tilde w$")
    a.set_ylabel(r"angle to $\hat w$ $\times \ln k$")
    a.set_title("Logistic regression on separable data: direction of the hard-margin SVM")
    a.legend(loc="lower right", fontsize=8)
    a.set_ylim(0, 1.5)
    b.plot(k, path["w2"], color=st.color(1), label=r"measured $w_2(k)$")
    b.axhline(svm["w_tilde2"][0], color="black", linestyle="--", label=r"Soudry's $\tilde w_2$ from the SVM's $\alpha$")
    b.set_ylabel(r"$w_2$ (across $\hat w$)")
    b.legend(loc="upper right", fontsize=8)
    c.plot(k, path["loss"] * k, color=st.color(2), label=r"loss $\times k$")
    c.axhline(1.0 / 0.1 * (svm["w_hat1"][0] ** 2 + svm["w_hat2"][0] ** 2), color="black", linestyle="--",
              label=r"$|\hat w|^2 / \eta$")
    c.set_xscale("log")
    c.set_xlabel("GD step k")
    c.set_ylabel(r"loss $\times k$")
    c.legend(loc="lower right", fontsize=8)
    out.append((run.save(fig, "max_margin"),
                "GD (eta = 0.1) on the mean logistic loss of separable data. Top: the angle to the SVM direction "
                "times ln k against the expansion w_hat ln k + w_tilde (dashed). Middle: the weight across w_hat "
                "tends to Soudry's offset, computed from the SVM's dual variables. Bottom: loss x k tends to "
                "|w_hat|^2 / eta."))

    # Diagonal nets: small and large init.
    data = run.csv("diagonal_net.csv")
    fig, axes = st.figure(2, 1, height=5.6, sharex=True)
    a, b = axes[0, 0], axes[1, 0]
    i = data["i"]
    a.plot(i, data["beta_star"], color="black", marker="o", linestyle="none", markersize=7, markerfacecolor="none",
           label=r"sparse truth $\beta^*$")
    a.plot(i, data["beta_small"], color=st.color(0), marker=".", linestyle="none", label=r"trained, $\alpha = 10^{-3}$")
    a.set_ylabel(r"$\beta_i$")
    a.set_title(r"Diagonal net $\beta = u \odot u - v \odot v$: rich regime (small init)")
    a.legend(loc="upper right", fontsize=8)
    b.plot(i, data["pinv"], color="black", marker="o", linestyle="none", markersize=7, markerfacecolor="none",
           label=r"minimum-$\ell_2$ solution $X^+ y$")
    b.plot(i, data["beta_large"], color=st.color(1), marker=".", linestyle="none", label=r"trained, $\alpha = 30$")
    b.plot(i, data["beta_mid"], color=st.color(2), marker="x", linestyle="none", markersize=4,
           label=r"trained, $\alpha = 0.3$")
    b.set_ylabel(r"$\beta_i$")
    b.set_xlabel("coordinate i")
    b.set_title("kernel regime (large init), and in between")
    b.legend(loc="upper left", fontsize=8)
    out.append((run.save(fig, "diagonal_net"),
                "Diagonal linear net on 40 equations in 100 unknowns. A small init finds the 3-sparse truth, a large "
                "one the minimum-l2 interpolant x^+ y; every alpha lands on the minimiser of Woodworth's Q_alpha "
                "(checked), which the in-between alpha = 0.3 shows."))
    return out


FIGURES = {"deep_linear_demo": deep_linear, "ntk_demo": ntk, "hessian_demo": hessian, "symmetry_demo": symmetry,
           "train_digits": train_digits, "cnn_digits": cnn_digits, "cntk_demo": cntk, "ntk_spectrum_demo": ntk_spectrum,
           "similarity_demo": similarity, "lazy_training_demo": lazy_training,
           "landscape_demo": landscape,
           "implicit_bias_demo": implicit_bias}
