"""Procedural RGB-D scenes, ray-cast: the embedded default dataset's renderer.

A pinhole camera inside a room, a corridor or an open plaza looks at a ground
plane, walls and a handful of occluding objects (axis-aligned boxes, spheres and
vertical cylinders).  Every pixel casts one ray; the nearest hit over all surfaces
wins (a z-buffer).  The images carry the monocular cues a depth network is meant to
learn from real photographs:

* perspective: the ground recedes towards the horizon, walls converge;
* texture gradient: textures are defined in world units (metres), so their
  on-screen density grows with distance, and they fade to their mean colour once a
  pixel's footprint exceeds the pattern period (a cheap analytic anti-aliasing that
  also mimics the blur of real far-away texture);
* shading: Lambertian light from a random direction plus ambient, with cast
  shadows of the objects;
* occlusion: objects hide the walls and each other;
* aerial perspective: mild fog (outdoors) or light fall-off (indoors) with distance.

Depth is planar (camera z) depth in metres, as depth sensors report it; every pixel
hits a surface, so depth is finite and positive everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["render_scene"]

_EPS = 1e-4
_INF = np.float32(np.inf)


# --------------------------------------------------------------------------- noise
class _Noise:
    """Lattice value noise: smooth, deterministic and fully vectorised.

    Lattice values come from one fixed 256x256 random table (wrapping); each scene
    draws its own lattice offset, which decorrelates scenes at no per-scene cost.
    """

    _TABLE = np.random.default_rng(20210619).random(256 * 256).astype(np.float32)

    def __init__(self, rng: np.random.Generator) -> None:
        self.offset = rng.integers(0, 1 << 20, size=2)

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Value noise in [0, 1] with unit lattice spacing."""
        fu, fv = np.floor(u), np.floor(v)
        du, dv = u - fu, v - fv
        iu = fu.astype(np.int64) + self.offset[0]
        iv = fv.astype(np.int64) + self.offset[1]
        r0, r1 = (iu & 255) << 8, ((iu + 1) & 255) << 8
        c0, c1 = iv & 255, (iv + 1) & 255
        T = self._TABLE
        a, b, c, d = T[r0 | c0], T[r1 | c0], T[r0 | c1], T[r1 | c1]
        su, sv = du * du * (3 - 2 * du), dv * dv * (3 - 2 * dv)  # smoothstep
        top = a + (b - a) * su
        bot = c + (d - c) * su
        return top + (bot - top) * sv

    def fractal(self, u: np.ndarray, v: np.ndarray, octaves: int = 2) -> np.ndarray:
        out = np.zeros_like(u)
        amp, total = 1.0, 0.0
        for k in range(octaves):
            f = 2.0**k
            out += amp * self(u * f + 17.3 * k, v * f - 9.1 * k)
            total += amp
            amp *= 0.5
        return out / total


# ------------------------------------------------------------------------ materials
@dataclass
class _Material:
    """A two-colour procedural pattern defined in world units."""

    kind: str  # checker | stripes | tiles | planks | noise | plain
    scale: float  # pattern period in metres
    c0: np.ndarray  # float32 [3] in [0, 1]
    c1: np.ndarray
    angle: float = 0.0  # stripe orientation (radians)
    grain: float = 0.08  # amplitude of fine multiplicative noise
    gradient: bool = False  # vertical sky-like gradient (far backdrop in open scenes)


def _random_colour(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]) -> np.ndarray:
    """HSV -> RGB with a random hue; saturation/value ranges keep colours natural."""
    h, s, v = rng.random(), rng.uniform(*sat), rng.uniform(*val)
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    rgb = v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return rgb.astype(np.float32)


def _random_material(rng: np.random.Generator, kinds: tuple[str, ...], scale: tuple[float, float]) -> _Material:
    kind = kinds[int(rng.integers(len(kinds)))]
    c0 = _random_colour(rng, (0.1, 0.75), (0.35, 0.95))
    if rng.random() < 0.5:  # a darker/lighter shade of the same hue
        c1 = np.clip(c0 * rng.uniform(0.35, 0.75), 0, 1).astype(np.float32)
    else:
        c1 = _random_colour(rng, (0.05, 0.7), (0.15, 0.9))
    return _Material(
        kind=kind,
        scale=float(np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1])))),
        c0=c0,
        c1=c1,
        angle=float((0.0, np.pi / 2, rng.uniform(0, np.pi))[int(rng.integers(3))]),
        grain=float(rng.uniform(0.03, 0.15)),
    )


def _pattern(mat: _Material, u: np.ndarray, v: np.ndarray, noise: _Noise) -> np.ndarray:
    """Pattern value in [0, 1] at surface coordinates (u, v) in metres."""
    s = mat.scale
    if mat.kind == "checker":
        return ((np.floor(u / s) + np.floor(v / s)) % 2).astype(np.float32)
    if mat.kind == "stripes":
        w = u * np.cos(mat.angle) + v * np.sin(mat.angle)
        return (np.floor(2 * w / s) % 2).astype(np.float32)
    if mat.kind == "tiles":  # light tiles with thin dark grout lines
        fu, fv = (u / s) % 1.0, (v / s) % 1.0
        grout = (np.minimum(fu, 1 - fu) < 0.04) | (np.minimum(fv, 1 - fv) < 0.04)
        return np.where(grout, 1.0, 0.15 * noise(u / s * 3, v / s * 3)).astype(np.float32)
    if mat.kind == "planks":  # boards along u with staggered seams and wood grain
        row = np.floor(v / s)
        fv = (v / s) % 1.0
        seam = np.minimum(fv, 1 - fv) < 0.05
        grain = noise(u / s * 0.7 + row * 13.0, v / s * 8.0)
        return np.where(seam, 1.0, 0.7 * grain).astype(np.float32)
    if mat.kind == "noise":
        return noise.fractal(u / s, v / s, octaves=3)
    return np.full(u.shape, 0.5, np.float32)  # plain: only the fine grain shows


# ------------------------------------------------------------------------ geometry
def _dot(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Row-wise dot product with one 3-vector.

    Written out instead of ``a @ v``: for [N,3] x [3] numpy calls BLAS, whose thread
    pool costs more than the arithmetic and stalls badly on a busy machine.
    """
    a = np.atleast_2d(a)
    return a[:, 0] * v[0] + a[:, 1] * v[1] + a[:, 2] * v[2]


# Each primitive intersects rays (origins O [N,3] or [1,3], directions D [N,3]) and
# returns t [N] (inf = miss) in units of D: with camera rays whose camera-frame z is 1,
# t is the planar depth itself.


@dataclass
class _Plane:
    point: np.ndarray
    normal: np.ndarray
    axes: tuple[int, int]  # world axes used as texture coordinates
    material: _Material

    def intersect(self, O: np.ndarray, D: np.ndarray) -> np.ndarray:
        denom = _dot(D, self.normal)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = _dot(self.point - O, self.normal) / denom
        return np.where((np.abs(denom) > 1e-9) & (t > _EPS), t, _INF).astype(np.float32)

    def surface(self, P: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = np.broadcast_to(self.normal, P.shape)
        return n, P[:, self.axes[0]], P[:, self.axes[1]]


@dataclass
class _Box:
    lo: np.ndarray
    hi: np.ndarray
    material: _Material

    def bounds(self) -> tuple[np.ndarray, float]:
        return (self.lo + self.hi) / 2, float(np.linalg.norm(self.hi - self.lo)) / 2

    def intersect(self, O: np.ndarray, D: np.ndarray) -> np.ndarray:
        O = np.broadcast_to(O, D.shape)
        tnear = np.full(D.shape[0], -np.inf, np.float32)
        tfar = np.full(D.shape[0], np.inf, np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            for ax in range(3):  # slab method; fmax/fmin skip the NaN of 0 * inf
                inv = 1.0 / D[:, ax]
                t1 = (self.lo[ax] - O[:, ax]) * inv
                t2 = (self.hi[ax] - O[:, ax]) * inv
                tnear = np.fmax(tnear, np.minimum(t1, t2))
                tfar = np.fmin(tfar, np.maximum(t1, t2))
        hit = (tfar >= tnear) & (tnear > _EPS)
        return np.where(hit, tnear, _INF).astype(np.float32)

    def surface(self, P: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # The face hit is the one whose slab the point lies on (closest boundary).
        d = np.stack([np.abs(P - self.lo), np.abs(P - self.hi)], axis=0)  # [2,N,3]
        dmin = d.min(axis=0)
        axis = dmin.argmin(axis=1)
        side = np.take_along_axis(d.argmin(axis=0), axis[:, None], axis=1)[:, 0]  # 0 lo, 1 hi
        n = np.zeros_like(P)
        n[np.arange(len(P)), axis] = np.where(side == 1, 1.0, -1.0)
        # Texture coordinates: the two axes spanning the face.
        uax = np.where(axis == 0, 2, 0)
        vax = np.where(axis == 1, 2, 1)
        idx = np.arange(len(P))
        return n, P[idx, uax], P[idx, vax]


@dataclass
class _Sphere:
    centre: np.ndarray
    radius: float
    material: _Material

    def bounds(self) -> tuple[np.ndarray, float]:
        return self.centre, self.radius

    def intersect(self, O: np.ndarray, D: np.ndarray) -> np.ndarray:
        oc = np.broadcast_to(O - self.centre, D.shape)
        a = np.einsum("ij,ij->i", D, D)
        b = 2.0 * np.einsum("ij,ij->i", D, oc)
        c = np.einsum("ij,ij->i", oc, oc) - self.radius**2
        disc = b * b - 4 * a * c
        sq = np.sqrt(np.maximum(disc, 0))
        t = (-b - sq) / (2 * a)
        return np.where((disc > 0) & (t > _EPS), t, _INF).astype(np.float32)

    def surface(self, P: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q = P - self.centre
        n = q / self.radius
        # Arc-length coordinates keep the texture period in metres.
        u = np.arctan2(q[:, 2], q[:, 0]) * self.radius
        v = np.arcsin(np.clip(n[:, 1], -1, 1)) * self.radius
        return n, u, v


@dataclass
class _Cylinder:
    """Vertical cylinder standing on the ground, with a flat top cap."""

    cx: float
    cz: float
    radius: float
    height: float
    material: _Material

    def bounds(self) -> tuple[np.ndarray, float]:
        return np.array([self.cx, self.height / 2, self.cz], np.float32), float(np.hypot(self.radius, self.height / 2))

    def intersect(self, O: np.ndarray, D: np.ndarray) -> np.ndarray:
        O = np.broadcast_to(O, D.shape)
        ox, oz = O[:, 0] - self.cx, O[:, 2] - self.cz
        dx, dz = D[:, 0], D[:, 2]
        a = dx * dx + dz * dz
        b = 2 * (ox * dx + oz * dz)
        c = ox * ox + oz * oz - self.radius**2
        disc = b * b - 4 * a * c
        with np.errstate(divide="ignore", invalid="ignore"):
            t_side = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
            y = O[:, 1] + t_side * D[:, 1]
            side_ok = (disc > 0) & (a > 1e-12) & (t_side > _EPS) & (y >= 0) & (y <= self.height)
            t_top = (self.height - O[:, 1]) / D[:, 1]
        px, pz = ox + t_top * dx, oz + t_top * dz
        top_ok = (t_top > _EPS) & (px * px + pz * pz <= self.radius**2)
        t = np.minimum(np.where(side_ok, t_side, _INF), np.where(top_ok, t_top, _INF))
        return t.astype(np.float32)

    def surface(self, P: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        qx, qz = P[:, 0] - self.cx, P[:, 2] - self.cz
        top = P[:, 1] >= self.height - 1e-3
        r = np.maximum(np.sqrt(qx * qx + qz * qz), 1e-6)
        n = np.stack([qx / r, np.zeros_like(qx), qz / r], axis=1)
        n[top] = (0.0, 1.0, 0.0)
        u = np.where(top, qx, np.arctan2(qz, qx) * self.radius)
        v = np.where(top, qz, P[:, 1])
        return n, u, v


# ------------------------------------------------------------------------- scenes
@dataclass
class _Scene:
    surfaces: list = field(default_factory=list)  # planes first, then objects
    n_planes: int = 0
    light: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0, 0.0], np.float32))
    ambient: float = 0.3
    fill: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, -1.0], np.float32))
    fill_strength: float = 0.2
    fog_colour: np.ndarray = field(default_factory=lambda: np.ones(3, np.float32))
    fog_distance: float = 50.0
    falloff: bool = False  # indoor: darkening with distance instead of haze


_WALL_KINDS = ("plain", "noise", "stripes", "tiles", "checker")
_FLOOR_KINDS = ("checker", "tiles", "planks", "noise", "stripes")
_OBJECT_KINDS = ("checker", "stripes", "noise", "plain", "planks")


def _pick(rng: np.random.Generator, options: tuple[str, ...], p: tuple[float, ...]) -> str:
    """Weighted choice; much cheaper than Generator.choice for a handful of options."""
    return options[min(int(np.searchsorted(np.cumsum(p), rng.random() * sum(p))), len(options) - 1)]


@dataclass
class _Layout:
    """A scene's kind and size; the camera stands at x = cam_x, z = 0, looking down +z."""
    kind: str      # room, corridor or open
    half_w: float  # half the width between the side walls (0 outdoors)
    depth: float   # distance to the back wall
    ceil: float    # ceiling height (0 outdoors)
    cam_x: float


def _build_scene(rng: np.random.Generator) -> tuple[_Scene, np.ndarray, np.ndarray]:
    """Random layout. Returns the scene, the camera position and the camera yaw/pitch/roll."""
    kind = _pick(rng, ("room", "corridor", "open"), (0.45, 0.3, 0.25))
    sc = _Scene()
    floor = _random_material(rng, _FLOOR_KINDS, (0.25, 1.2))
    wall = _random_material(rng, _WALL_KINDS, (0.2, 1.0))
    wall2 = wall if rng.random() < 0.6 else _random_material(rng, _WALL_KINDS, (0.2, 1.0))
    cam_h = rng.uniform(1.0, 1.8)

    if kind == "room":
        half_w, depth, ceil = rng.uniform(2.0, 5.0), rng.uniform(4.0, 12.0), rng.uniform(2.5, 3.8)
    elif kind == "corridor":
        half_w, depth, ceil = rng.uniform(0.9, 1.8), rng.uniform(15.0, 45.0), rng.uniform(2.4, 3.2)
    else:
        half_w, depth, ceil = 0.0, rng.uniform(30.0, 80.0), 0.0
    lay = _Layout(kind, half_w, depth, ceil, cam_x=rng.uniform(-0.4, 0.4) * half_w)

    xmin, xmax = _add_enclosure(rng, sc, lay, floor, wall, wall2)
    _add_objects(rng, sc, lay, xmin, xmax)
    _add_lights(rng, sc, lay.kind)
    cam = np.array([lay.cam_x, cam_h, 0.0], np.float32)
    ypr = np.array([rng.uniform(-0.25, 0.25), rng.uniform(-0.30, 0.05), rng.uniform(-0.04, 0.04)], np.float32)
    return sc, cam, ypr


def _add_enclosure(rng: np.random.Generator, sc: _Scene, lay: _Layout, floor: _Material,
                   wall: _Material, back: _Material) -> tuple[float, float]:
    """Floor, back wall (a hazy skyline outdoors), side walls and maybe a ceiling.
    Returns the x range objects may stand in."""
    e = np.eye(3, dtype=np.float32)
    sc.surfaces.append(_Plane(np.zeros(3, np.float32), e[1], (0, 2), floor))
    if lay.kind == "open":
        # Far backdrop: a hazy skyline, bright at the top like a sky.
        back = _Material("noise", rng.uniform(3.0, 10.0), _random_colour(rng, (0.05, 0.3), (0.75, 0.95)),
                         _random_colour(rng, (0.1, 0.4), (0.4, 0.7)), grain=0.02, gradient=True)
    sc.surfaces.append(_Plane(np.array([0, 0, lay.depth], np.float32), -e[2], (0, 1), back))
    if lay.kind != "open":
        left_x = lay.cam_x - lay.half_w * rng.uniform(1.0, 1.5)
        right_x = lay.cam_x + lay.half_w * rng.uniform(1.0, 1.5)
        sc.surfaces.append(_Plane(np.array([left_x, 0, 0], np.float32), e[0], (2, 1), wall))
        sc.surfaces.append(_Plane(np.array([right_x, 0, 0], np.float32), -e[0], (2, 1), wall))
        ceiling = _Material("plain", 1.0, _random_colour(rng, (0.0, 0.15), (0.7, 0.95)),
                            _random_colour(rng, (0.0, 0.15), (0.5, 0.8)), grain=0.03)
        if rng.random() < 0.5:
            ceiling = _random_material(rng, ("tiles", "plain", "stripes"), (0.5, 1.2))
        # Halls and courtyards: some rooms show no ceiling, only tall walls above.
        if lay.kind == "corridor" or rng.random() < 0.6:
            sc.surfaces.append(_Plane(np.array([0, lay.ceil, 0], np.float32), -e[1], (0, 2), ceiling))
        xmin, xmax = left_x, right_x
    else:
        xmin, xmax = lay.cam_x - 0.6 * lay.depth, lay.cam_x + 0.6 * lay.depth
    sc.n_planes = len(sc.surfaces)
    return xmin, xmax


def _add_objects(rng: np.random.Generator, sc: _Scene, lay: _Layout, xmin: float,
                 xmax: float) -> None:
    """Occluders: spread in depth (log-uniform, so near objects are common) and laterally
    inside the visible wedge; sizes grow with distance only mildly."""
    for _ in range(int(rng.integers(3, 9))):
        z = float(np.exp(rng.uniform(np.log(1.5), np.log(max(2.0, 0.85 * lay.depth)))))
        half_view = 0.6 * z
        x = float(np.clip(lay.cam_x + rng.uniform(-half_view, half_view), xmin + 0.4, xmax - 0.4))
        size = rng.uniform(0.25, 0.9) * (1.0 + 0.03 * z)
        mat = _random_material(rng, _OBJECT_KINDS, (0.08, 0.5))
        kind = _pick(rng, ("box", "sphere", "cylinder"), (0.45, 0.3, 0.25))
        if kind == "box":
            w, d, h = size * rng.uniform(0.5, 1.6), size * rng.uniform(0.5, 1.6), size * rng.uniform(0.5, 2.5)
            if lay.kind != "open":
                h = min(h, lay.ceil - 0.1)
            y0 = 0.0 if rng.random() < 0.85 else rng.uniform(0.3, 1.0)  # a few floating shelves
            sc.surfaces.append(_Box(np.array([x - w / 2, y0, z - d / 2], np.float32),
                                    np.array([x + w / 2, y0 + h, z + d / 2], np.float32), mat))
        elif kind == "sphere":
            r = size * rng.uniform(0.4, 0.8)
            y = r if rng.random() < 0.7 else r + rng.uniform(0.2, 1.2)
            sc.surfaces.append(_Sphere(np.array([x, y, z], np.float32), float(r), mat))
        else:
            r = size * rng.uniform(0.2, 0.5)
            h = size * rng.uniform(1.0, 4.0)
            if lay.kind != "open":
                h = min(h, lay.ceil)
            sc.surfaces.append(_Cylinder(x, z, float(r), float(h), mat))


def _add_lights(rng: np.random.Generator, sc: _Scene, layout: str) -> None:
    """Light comes from above and somewhat from the front/side; ambient keeps shadows
    readable. Indoors a lamp near the camera darkens far surfaces; outdoors, haze."""
    az, el = rng.uniform(0, 2 * np.pi), rng.uniform(np.radians(25), np.radians(70))
    sc.light = np.array([np.cos(el) * np.cos(az), np.sin(el), np.cos(el) * np.sin(az) - 0.3], np.float32)
    sc.light /= np.linalg.norm(sc.light)
    sc.ambient = float(rng.uniform(0.2, 0.4))
    # A weak, shadowless fill light from another direction keeps faces that look away
    # from the key light from being flat (real rooms bounce light everywhere).
    fill = rng.normal(size=3) + np.array([0.0, 0.5, -0.5])
    sc.fill = (fill / np.linalg.norm(fill)).astype(np.float32)
    sc.fill_strength = float(rng.uniform(0.1, 0.3))
    if layout == "open":
        sc.fog_colour = _random_colour(rng, (0.0, 0.2), (0.75, 0.95))
        sc.fog_distance = float(rng.uniform(40.0, 120.0))
    else:
        sc.falloff = True
        sc.fog_distance = float(rng.uniform(12.0, 40.0))
        sc.fog_colour = np.zeros(3, np.float32)


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation; camera frame x right, y up, z forward."""
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])  # positive pitch looks up
    Rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return (Ry @ Rx @ Rz).astype(np.float32)


def _screen_rect(centre_cam: np.ndarray, radius: float, f: float, h: int, w: int) -> tuple[int, int, int, int] | None:
    """Conservative pixel rectangle (r0, r1, c0, c1) covering a bounding sphere; None if off-screen.

    The sphere lies in the box [x +- r] x [y +- r] x [z +- r]; x/z is monotonic in x and
    z for z > 0, so the box corners bound the projection.
    """
    x, y, z = (float(v) for v in centre_cam)
    if z - radius <= 1e-3:  # reaches behind the image plane: test every pixel
        return 0, h, 0, w
    xs = [(x + a * radius) / (z + b * radius) for a in (-1, 1) for b in (-1, 1)]
    ys = [(y + a * radius) / (z + b * radius) for a in (-1, 1) for b in (-1, 1)]
    c0, c1 = int(np.floor(min(xs) * f + w / 2)) - 1, int(np.ceil(max(xs) * f + w / 2)) + 1
    r0, r1 = int(np.floor(h / 2 - max(ys) * f)) - 1, int(np.ceil(h / 2 - min(ys) * f)) + 1
    c0, c1, r0, r1 = max(c0, 0), min(c1, w), max(r0, 0), min(r1, h)
    return (r0, r1, c0, c1) if r0 < r1 and c0 < c1 else None


def _zbuffer(sc: _Scene, O: np.ndarray, D: np.ndarray, R: np.ndarray, cam: np.ndarray, f: float,
             h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Per ray, the smallest hit parameter over all surfaces and the index of that surface.

    Planes are tested on every ray; each object only on the rays inside its projected
    bounding rectangle, which is what keeps scenes with many small objects cheap.
    """
    planes = sc.surfaces[: sc.n_planes]
    ts = np.stack([p.intersect(O, D) for p in planes], axis=0)
    sid = ts.argmin(axis=0)
    t = ts[sid, np.arange(D.shape[0])]
    for k in range(sc.n_planes, len(sc.surfaces)):
        centre, radius = sc.surfaces[k].bounds()
        rect = _screen_rect(R.T @ (centre - cam), radius, f, h, w)
        if rect is None:
            continue
        r0, r1, c0, c1 = rect
        idx = (np.arange(r0, r1)[:, None] * w + np.arange(c0, c1)[None, :]).ravel()
        tk = sc.surfaces[k].intersect(O, D[idx])
        closer = tk < t[idx]
        t[idx[closer]] = tk[closer]
        sid[idx[closer]] = k
    return t, sid


def _surface_colours(sc: _Scene, P: np.ndarray, Dn: np.ndarray, dist: np.ndarray,
                     sid: np.ndarray, pixel_angle: float,
                     noise: _Noise) -> tuple[np.ndarray, np.ndarray]:
    """Albedo and normal at each ray's hit point `P` on surface `sid`, seen along unit
    ray `Dn` from `dist` away. `pixel_angle`: radians per pixel at the image centre,
    close enough everywhere for the texture's footprint."""
    albedo = np.empty((len(P), 3), np.float32)
    normal = np.empty((len(P), 3), np.float32)
    for k, surf in enumerate(sc.surfaces):
        idx = np.nonzero(sid == k)[0]
        if idx.size == 0:
            continue
        n, u, v = surf.surface(P[idx])
        mat = surf.material
        # Pixel footprint on the surface in metres; grazing angles stretch it.
        cos = np.maximum(np.abs(np.einsum("ij,ij->i", n, Dn[idx])), 0.08)
        footprint = dist[idx] * pixel_angle / cos
        pat = _pattern(mat, u, v, noise)
        fade = np.clip(footprint / mat.scale * 2.0 - 0.5, 0.0, 1.0)  # blur once period < 2 px
        pat = pat + (0.5 - pat) * fade
        col = mat.c0[None, :] * (1 - pat[:, None]) + mat.c1[None, :] * pat[:, None]
        g_scale = 0.05
        g_fade = np.clip(footprint / g_scale - 0.5, 0.0, 1.0)
        grain = (noise(u / g_scale + 31.7 * k, v / g_scale) - 0.5) * 2 * mat.grain * (1 - g_fade)
        col = col * (1 + grain[:, None])
        if mat.gradient:  # backdrop: brighten towards the top like a sky
            h = np.clip(P[idx, 1] / 25.0, 0, 1)[:, None]
            col = col * (1 - h) + np.array([0.75, 0.85, 0.98], np.float32) * h
        albedo[idx] = col
        normal[idx] = n
    return albedo, normal


def _shade(sc: _Scene, P: np.ndarray, albedo: np.ndarray, normal: np.ndarray,
           dist: np.ndarray) -> np.ndarray:
    """Lambertian shading with cast shadows from the objects (walls do not cast: the
    light is a sun/lamp "inside" the scene), then the lamp's falloff or the haze."""
    ndotl = np.clip(_dot(normal, sc.light), 0.0, 1.0)
    lit = ndotl > 0
    if lit.any() and len(sc.surfaces) > sc.n_planes:
        li = np.nonzero(lit)[0]
        Ps = P[li] + normal[li] * 1e-3
        Ls = np.broadcast_to(sc.light, Ps.shape)
        ts = np.stack([s.intersect(Ps, Ls) for s in sc.surfaces[sc.n_planes:]], axis=0).min(axis=0)
        ndotl[li[np.isfinite(ts)]] = 0.0
    shade = sc.ambient + (1 - sc.ambient) * ndotl + sc.fill_strength * np.clip(_dot(normal, sc.fill), 0.0, 1.0)
    rgb = albedo * shade[:, None]

    if sc.falloff:  # indoor lamp near the camera: far surfaces get darker
        rgb = rgb / (1.0 + (dist / sc.fog_distance) ** 2)[:, None]
    else:  # outdoor haze
        a = np.exp(-dist / sc.fog_distance)[:, None]
        rgb = rgb * a + sc.fog_colour[None, :] * (1 - a)
    return rgb


def render_scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Render one random scene.

    Returns ``rgb`` uint8 [H, W, 3] and ``depth`` float32 [H, W]: planar depth in metres,
    finite and > 0 at every pixel. The result depends only on the state of ``rng``.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {(height, width)}")
    sc, cam, ypr = _build_scene(rng)
    fov = np.radians(rng.uniform(50.0, 75.0))  # horizontal field of view
    f = float(0.5 * width / np.tan(0.5 * fov))
    R = _rotation(*ypr)

    # Camera rays with camera-frame z == 1, so the hit parameter t equals planar depth.
    xs = (np.arange(width, dtype=np.float32) + 0.5 - 0.5 * width) / f
    ys = (0.5 * height - np.arange(height, dtype=np.float32) - 0.5) / f
    dx, dy = np.meshgrid(xs, ys)
    d_cam = np.stack([dx, dy, np.ones_like(dx)], axis=-1).reshape(-1, 3)
    D = np.einsum("ij,kj->ik", d_cam, R)  # R @ d for every ray
    O = cam[None, :]

    t, sid = _zbuffer(sc, O, D, R, cam, f, height, width)
    P = O + t[:, None] * D
    ray_len = np.sqrt(np.einsum("ij,ij->i", D, D))
    dist = t * ray_len  # Euclidean distance, for fog and texture footprint
    Dn = D / ray_len[:, None]

    albedo, normal = _surface_colours(sc, P, Dn, dist, sid, 1.0 / f, _Noise(rng))
    rgb = _shade(sc, P, albedo, normal, dist)

    # Exposure variation and a little sensor noise.
    exposure = np.float32(rng.uniform(0.85, 1.15))
    rgb = rgb * exposure + rng.standard_normal((len(rgb), 1), np.float32) * np.float32(0.012)
    rgb8 = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).reshape(height, width, 3)
    depth = t.reshape(height, width).astype(np.float32)
    return rgb8, depth
