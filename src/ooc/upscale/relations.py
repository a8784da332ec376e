"""Property-porosity relations k(phi), D(phi) fitted on a finer scan's block map.

Every block of the finer scan gives one point (its porosity, its property); a relation fitted
through them turns the per-voxel porosity of a coarse scan's sub-resolution phase (from its grey
value, :mod:`ooc.upscale.grey`) into a per-voxel property.  The forms:

``archie``
    ``y = phi**m`` (Archie's law for ``D_eff/D0`` or a formation factor; one parameter).
``power``
    ``y = a phi**m``.
``kozeny_carman``
    ``y = c phi**3 / (1 - phi)**2`` (permeability; ``c`` in the units of ``y``).
``threshold``
    ``y = a (phi - phi_c)**m`` above a percolation threshold ``phi_c``, 0 below.

Fits minimise the squared error of ``log y`` (the properties span decades); blocks with
``y <= 0`` (nothing percolates) are left out of the fit and counted.  Each relation states its
error: the RMS of ``log(fit / y)`` and the largest relative error over the fitted blocks.

Fit on blocks the size of the coarse voxel the relation will be applied to: a relation holds at
the scale it was measured at.  :func:`calibrate_relation` then sets its level so that the finer
scan's own blocks, given the relation's values and solved as one coarse grid the way the coarse
scan will be, give the finer scan's whole-solve value: the relation's shape comes from the
blocks, its level from the whole scan (a block solved alone with closed sides is not the same
material as a block among neighbours, and the coarse solve's coupling of cells is its own).
On the synthetic two-scale case (``ooc.upscale.testing``, ratio 8), 16³-block relations put the
coarse ``D_eff`` 5-16 % low where 8³-block relations did not.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FORMS", "Relation", "calibrate_relation", "fit_relation", "fit_relations"]

FORMS = ("archie", "power", "kozeny_carman", "threshold")


def _evaluate(form: str, p: dict[str, float], phi: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        if form == "archie":
            return phi ** p["m"]
        if form == "power":
            return p["a"] * phi ** p["m"]
        if form == "kozeny_carman":
            return np.where(phi < 1, p["c"] * phi**3 / (1 - phi) ** 2, np.inf)
        x = np.clip(phi - p["phi_c"], 0.0, None)
        return p["a"] * x ** p["m"]


@dataclass(frozen=True)
class Relation:
    """A fitted property-porosity relation; call it on porosities to get the property.

    Attributes
    ----------
    quantity : str
        What it gives (e.g. ``"relative_diffusivity"``, ``"permeability"``).
    form : str
        One of :data:`FORMS`.
    params : dict
        Fitted parameters (``m``, ``a``, ``c``, ``phi_c`` as the form needs).
    rms_log_error : float
        RMS of ``log(fit / value)`` over the fitted blocks.
    max_relative_error : float
        Largest ``|fit / value - 1|`` over the fitted blocks.
    n_points : int
        Blocks fitted.
    n_excluded : int
        Blocks left out (value <= 0 or not finite).
    porosity_range : (float, float)
        Porosities of the fitted blocks (the relation is extrapolated outside).
    """

    quantity: str
    form: str
    params: dict[str, float]
    rms_log_error: float
    max_relative_error: float
    n_points: int
    n_excluded: int
    porosity_range: tuple[float, float]
    scale: float = 1.0

    def __call__(self, porosity: Any) -> np.ndarray:
        """The property at ``porosity`` (array-like, clipped to [0, 1]); float64."""
        phi = np.clip(np.asarray(porosity, dtype=np.float64), 0.0, 1.0)
        return self.scale * _evaluate(self.form, self.params, phi)

    def to_dict(self) -> dict[str, Any]:
        """The relation as JSON-able values (:meth:`from_dict` rebuilds it)."""
        out = dataclasses.asdict(self)
        out["porosity_range"] = list(self.porosity_range)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Relation:
        """A relation from :meth:`to_dict`'s values.

        Raises
        ------
        ValueError
            An unknown form, or a missing or unexpected key.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
        if set(data) - names or required - set(data):
            raise ValueError(
                f"a relation needs the keys {sorted(required)} (and optionally 'scale'); "
                f"got {sorted(data)}"
            )
        if data["form"] not in FORMS:
            raise ValueError(f"form must be one of {FORMS}; got {data['form']!r}")
        lo, hi = data["porosity_range"]
        return cls(
            **{
                **data,
                "params": {str(k): float(v) for k, v in data["params"].items()},
                "porosity_range": (float(lo), float(hi)),
            }
        )

    def formula(self) -> str:
        """The relation in words, with its parameters and error."""
        p = self.params
        body = {
            "archie": f"phi^{p.get('m', math.nan):.3g}",
            "power": f"{p.get('a', math.nan):.4g} phi^{p.get('m', math.nan):.3g}",
            "kozeny_carman": f"{p.get('c', math.nan):.4g} phi^3/(1-phi)^2",
            "threshold": (
                f"{p.get('a', math.nan):.4g} (phi - {p.get('phi_c', math.nan):.3g})"
                f"^{p.get('m', math.nan):.3g}"
            ),
        }[self.form]
        lo, hi = self.porosity_range
        if self.scale != 1.0:
            body = f"{self.scale:.4g} x {body}"
        return (
            f"{self.quantity} = {body} ({self.form}; {self.n_points} blocks, phi {lo:.3g}-{hi:.3g}, "
            f"RMS log error {self.rms_log_error:.3g}, max relative error {self.max_relative_error:.3g})"
        )


def _linear_log_fit(x: np.ndarray, ly: np.ndarray, slope: bool, icept: bool) -> tuple[float, float]:
    """Least squares of ``ly ~ b + m x`` with either parameter fixed at 0 when not fitted."""
    if slope and icept:
        A = np.stack([np.ones_like(x), x], axis=1)
        (b, m), *_ = np.linalg.lstsq(A, ly, rcond=None)
        return float(b), float(m)
    if slope:
        return 0.0, float((x * ly).sum() / (x * x).sum())
    return float(ly.mean()), 0.0


def fit_relation(porosity: Any, values: Any, *, form: str, quantity: str = "property") -> Relation:
    """Fit one relation ``y(phi)`` to block porosities and block values.

    Parameters
    ----------
    porosity, values : array-like, same shape
        One porosity and one property value per block (any shape; NaN is skipped).
    form : str
        One of :data:`FORMS`.
    quantity : str
        Name recorded in the relation.

    Returns
    -------
    Relation
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}; got {form!r}")
    phi = np.asarray(porosity, dtype=np.float64).ravel()
    y = np.asarray(values, dtype=np.float64).ravel()
    if phi.shape != y.shape:
        raise ValueError(f"porosity and values differ in size: {phi.size} vs {y.size}")
    ok = np.isfinite(phi) & np.isfinite(y) & (y > 0) & (phi > 0) & (phi < 1)
    n_ex = int(phi.size - ok.sum())
    phi, y = phi[ok], y[ok]
    need = {"archie": 2, "power": 2, "kozeny_carman": 1, "threshold": 4}[form]
    if phi.size < need:
        raise ValueError(
            f"fit_relation({form!r}) needs at least {need} blocks with 0 < porosity < 1 and a "
            f"value > 0; got {phi.size}"
        )
    ly = np.log(y)
    if form == "archie":
        _, m = _linear_log_fit(np.log(phi), ly, True, False)
        params = {"m": m}
    elif form == "power":
        b, m = _linear_log_fit(np.log(phi), ly, True, True)
        params = {"a": math.exp(b), "m": m}
    elif form == "kozeny_carman":
        b, _ = _linear_log_fit(np.zeros_like(ly), ly - np.log(phi**3 / (1 - phi) ** 2), False, True)
        params = {"c": math.exp(b)}
    else:
        params = _fit_threshold(phi, ly)
    pred = _evaluate(form, params, phi)
    with np.errstate(divide="ignore"):
        lr = np.log(pred / y)
    return Relation(
        quantity=quantity,
        form=form,
        params=params,
        rms_log_error=float(np.sqrt(np.mean(lr**2))),
        max_relative_error=float(np.max(np.abs(pred / y - 1))),
        n_points=int(phi.size),
        n_excluded=n_ex,
        porosity_range=(float(phi.min()), float(phi.max())),
    )


def _fit_threshold(phi: np.ndarray, ly: np.ndarray) -> dict[str, float]:
    """``log y = log a + m log(phi - phi_c)``: linear in (log a, m) for each phi_c; scan it."""
    best: tuple[float, dict[str, float]] = (math.inf, {})
    hi = float(phi.min())
    # the linear fit is exact for fixed phi_c; a fine scan then a refinement around the best
    grid = np.linspace(0.0, hi * (1 - 1e-6), 200)
    for _ in range(2):
        for pc in grid:
            x = np.log(phi - pc)
            b, m = _linear_log_fit(x, ly, True, True)
            err = float(np.sum((b + m * x - ly) ** 2))
            if err < best[0]:
                best = (err, {"a": math.exp(b), "m": m, "phi_c": float(pc)})
        pc0 = best[1]["phi_c"]
        step = grid[1] - grid[0]
        grid = np.linspace(max(0.0, pc0 - step), min(hi * (1 - 1e-9), pc0 + step), 50)
    return best[1]


def fit_relations(
    block_map: Any,
    quantity: str,
    *,
    forms: Sequence[str] | None = None,
    direction: str | None = None,
) -> list[Relation]:
    """Fit every form to one quantity of a block map; best (smallest RMS log error) first.

    Parameters
    ----------
    block_map : xarray.Dataset
        Output of :func:`ooc.simulate.property_map` of the finer scan.
    quantity : str
        A variable of the map with a ``direction`` dimension: ``"relative_diffusivity"``,
        ``"permeability"``, ``"conductivity"``, ``"relative_conductivity"``.
    forms : sequence of str, optional
        Forms to try (default: :data:`FORMS`; forms that cannot be fitted are skipped).
    direction : {"z", "y", "x"}, optional
        Fit one axis (for a per-axis field); default all axes pooled (an isotropic relation).

    Returns
    -------
    list of Relation
    """
    if quantity not in block_map:
        raise ValueError(
            f"the block map has no {quantity!r}; it holds {sorted(block_map.data_vars)}"
        )
    var = block_map[quantity]
    if direction is not None:
        var = var.sel(direction=direction)
    phi = np.broadcast_to(
        np.asarray(block_map.porosity.values)[..., None]
        if "direction" in var.dims
        else np.asarray(block_map.porosity.values),
        var.shape,
    )
    out = []
    for form in forms or FORMS:
        try:
            out.append(fit_relation(phi, np.asarray(var.values), form=form, quantity=quantity))
        except ValueError:
            if forms is not None:
                raise
    if not out:
        raise ValueError(f"no relation could be fitted to {quantity!r} (too few usable blocks)")
    return sorted(out, key=lambda r: r.rms_log_error)


def calibrate_relation(
    relation: Relation,
    block_map: Any,
    effective: Mapping[str, float],
    *,
    subdivide: int = 1,
) -> Relation:
    """The relation scaled so that the block map, solved as one coarse grid, gives ``effective``.

    Every block of ``block_map`` gets ``relation(block porosity)``; the blocks become the cells
    of one conduction solve (Darcy flow for permeability: the same equation), each split into
    ``subdivide``³ cells as the coarse scan's grid will be (:func:`ooc.upscale.refine_labels`),
    driven along each axis of ``effective``.  The scale is the geometric mean over those axes of
    ``effective / solved``.

    Parameters
    ----------
    relation : Relation
        Fitted on ``block_map`` (:func:`fit_relations`).
    block_map : xarray.Dataset
        :func:`ooc.simulate.property_map` of the finer scan; blocks of one size.
    effective : mapping axis -> float
        The finer scan's whole-solve value per axis (same units as the relation), e.g.
        ``tortuosity(scan).relative_diffusivity`` or ``permeability(scan, ...).k_m2``.
    subdivide : int
        Cells per block edge in the calibration solve.

    Returns
    -------
    Relation
        A copy with ``scale`` set (the fit's errors are those of the unscaled fit).
    """
    from ooc.simulate.conduction import conductivity

    sub = int(subdivide)
    if sub != subdivide or sub < 1:
        raise ValueError(f"subdivide must be an int >= 1; got {subdivide!r}")
    axes = [a for a in ("z", "y", "x") if a in effective]
    if not axes or any(not (float(effective[a]) > 0) for a in axes):
        raise ValueError(f"effective must give a value > 0 for some of z, y, x; got {effective}")
    for a in ("z", "y", "x"):
        sizes = np.asarray(block_map[f"{a}_size"].values)
        if sizes.min() != sizes.max():
            raise ValueError(
                f"blocks differ in size along {a}: calibration needs a block map of equal blocks"
            )
    phi = np.asarray(block_map.porosity.values, dtype=np.float64)
    unscaled = dataclasses.replace(relation, scale=1.0)
    values = unscaled(phi).astype(np.float64)
    values = np.repeat(np.repeat(np.repeat(values, sub, 0), sub, 1), sub, 2)
    labels = np.zeros(values.shape, dtype=np.uint8)
    solved = conductivity(
        labels, {0: values}, direction=axes, reference=1.0, rtol=1e-8, dtype=np.float64
    ).effective
    if any(not (solved[a] > 0) for a in axes):
        raise ValueError("the relation's values do not percolate through the block map's grid")
    scale = math.exp(sum(math.log(float(effective[a]) / solved[a]) for a in axes) / len(axes))
    return dataclasses.replace(relation, scale=scale)
