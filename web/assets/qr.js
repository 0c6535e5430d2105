// QR codes as SVG built with DOM calls (no markup strings, no style attributes: the CSP allows
// neither), from the vendored qrcode-generator. Loaded on demand by the two-factor setup.

import qrcode from './vendor/qrcode-generator/qrcode.mjs';

const SVG = 'http://www.w3.org/2000/svg';
const QUIET = 4; // modules of white border that scanners need

function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/** An `<svg role="img">` showing `text` (UTF-8, byte mode, error correction M) as a QR code. */
export function qrSvg(text, label) {
  const qr = qrcode(0, 'M');
  // The library's byte mode takes one char per byte: hand it the UTF-8 bytes.
  qr.addData(String.fromCharCode(...new TextEncoder().encode(text)), 'Byte');
  qr.make();
  const n = qr.getModuleCount();
  const size = n + 2 * QUIET;
  let d = '';
  for (let row = 0; row < n; row += 1) {
    for (let col = 0; col < n; col += 1) {
      if (qr.isDark(row, col)) d += `M${col + QUIET} ${row + QUIET}h1v1h-1z`;
    }
  }
  const svg = svgEl('svg', { class: 'qr', viewBox: `0 0 ${size} ${size}`, role: 'img', 'aria-label': label, 'shape-rendering': 'crispEdges' });
  svg.append(svgEl('rect', { width: size, height: size, fill: '#fff' }), svgEl('path', { d, fill: '#000' }));
  return svg;
}
