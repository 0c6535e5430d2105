// DOM building without HTML strings: text always goes through textContent.

/**
 * `el('button', {type: 'submit', onclick: fn, 'aria-label': 'Send'}, 'Send')`.
 * `text` sets textContent; `on*` keys add listeners; other keys are attributes.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') node.textContent = String(value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'value') node.value = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

/** A labelled input: `<label>Text <input></label>`. */
export function field(label, attrs) {
  return el('label', { class: 'field' }, el('span', { text: label }), el('input', attrs));
}

/** Replaces the children of `node`. */
export function show(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

/** A status line that screen readers announce. */
export function notice(text, kind = 'error') {
  return el('p', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status', text });
}

export function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}
