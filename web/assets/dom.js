// DOM building without HTML strings: text always goes through textContent. Shared by the
// client and the admin console: elements, fields, status lines, one-line forms and cards.

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

/** A small button saying `text`, named `label` for assistive technology, running `onclick`. */
export function smallButton(text, label, onclick) {
  return el('button', { type: 'button', class: 'small', 'aria-label': label, text, onclick });
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

/**
 * A one-line form: one input and a submit button. `submit(values, form)` runs on submit (the
 * page does not reload).
 */
export function inlineForm(label, input, button, submit) {
  const form = el('form', { class: 'inline-form', 'aria-label': label }, el('input', input), el('button', { type: 'submit', text: button }));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    submit(formValues(form), form);
  });
  return form;
}

/** A titled card: `<section class="card">` labelled by its `<h3 id>`. */
export function card(id, title, ...children) {
  return el('section', { class: 'card', 'aria-labelledby': id }, el('h3', { id, text: title }), ...children);
}

/** A titled form drawn as a card: `<form class="card">` labelled by its `<h3 id>`. */
export function cardForm(id, title, ...children) {
  return el('form', { class: 'card', 'aria-labelledby': id }, el('h3', { id, text: title }), ...children);
}

/**
 * A button whose `action` runs once at a time (the button is disabled meanwhile); what the
 * action throws is shown in `status`.
 */
export function busyButton(text, status, action) {
  const button = el('button', {
    type: 'button',
    text,
    onclick: async () => {
      button.disabled = true;
      try {
        await action();
      } catch (e) {
        show(status, notice(e.message));
      } finally {
        button.disabled = false;
      }
    },
  });
  return button;
}

/**
 * Runs `action(values, ev)` when `form` is submitted (the page does not reload); what the
 * action throws is shown in `status`.
 */
export function onSubmit(form, status, action) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await action(formValues(form), ev);
    } catch (e) {
      show(status, notice(e.message));
    }
  });
}

/** A byte count for people: `512 B`, `1.5 KiB`, `20 MiB`, `1 GiB` (at most one decimal). */
export function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = Number(n) || 0;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const shown = unit === 0 || value >= 100 ? Math.round(value) : Math.round(value * 10) / 10;
  return `${shown} ${units[unit]}`;
}
