// Face labels that never overlap: the page's port of ferkit.render.overlay.layout_labels (the annotated images
// place theirs the same way), and the label colours. Loaded before app.js; plain functions, no state.
"use strict";

function rectsOverlap(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

// boxes, sizes: [{x, y, w, h}] and [{w, h}] in the same pixels as width × height. Returns one spot {x, y, w, h} per
// box, none overlapping another: above the box, else below, else inside its top edge, else slid along those edges,
// then further up or down. A spot near its box that covers no other face is taken first (near: true), else the
// nearest spot free of other labels (near: false).
function layoutLabels(boxes, sizes, width, height) {
  const placed = [];
  boxes.forEach((box, i) => {
    const { w, h } = sizes[i];
    const others = boxes.filter((_, j) => j !== i);
    const fit = (x, y) => ({ x: Math.max(0, Math.min(x, width - w)), y: Math.max(0, Math.min(y, height - h)), w, h });
    const rows = [box.y - h, box.y + box.h, box.y];
    function* spots(reach) {
      for (const y of rows) yield fit(box.x, y);
      const step = Math.max(4, Math.floor(h / 2));
      for (let shift = step; shift <= reach; shift += step) {
        for (const y of rows) { yield fit(box.x + shift, y); yield fit(box.x - shift, y); }
        yield fit(box.x, box.y - h - shift);
        yield fit(box.x, box.y + box.h + shift);
      }
    }
    const free = (spot, avoidFaces) => !placed.some((p) => rectsOverlap(spot, p)) &&
      !(avoidFaces && others.some((o) => rectsOverlap(spot, o)));
    const find = (reach, avoidFaces) => { for (const s of spots(reach)) if (free(s, avoidFaces)) return s; return null; };
    let spot = find(Math.max(w, 4 * h), true);
    const near = spot !== null;
    spot = spot || find(Math.max(width, height), false) || fit(box.x, rows[0]);
    placed.push({ ...spot, near });
  });
  return placed;
}

// A colour for any label: the server's for the known expressions, else one made from the name the way
// ferkit.render.overlay.color_for makes it (HSV hue from the letters), so a model's own classes match too.
function labelColor(label, known) {
  if (known && known[label]) return known[label];
  let code = 0;
  for (let i = 0; i < label.length; i++) code += (i + 1) * label.charCodeAt(i);
  const hue = (code % 180) * 2, s = 170 / 255, v = 230 / 255;
  const f = (n) => {
    const k = (n + hue / 60) % 6;
    return Math.round(255 * (v - v * s * Math.max(0, Math.min(k, 4 - k, 1))));
  };
  return "#" + [f(5), f(3), f(1)].map((c) => c.toString(16).padStart(2, "0")).join("");
}
