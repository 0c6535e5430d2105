// The two-factor page of the chat client (`#/security`): set up TOTP (QR code, key and link,
// then a code to confirm; the recovery codes shown once) and turn it off again.

import { api } from '../api.js';
import { cardForm, el, notice, onSubmit, show } from '../dom.js';
import { ui } from './state.js';

export function securityView() {
  const setupArea = el('div');
  const setupStatus = el('div');
  const setupButton = el('button', {
    type: 'button',
    text: 'Set up two-factor authentication',
    onclick: async () => {
      try {
        const s = await api('POST', '/auth/totp/setup', {});
        show(setupArea, enableForm(s));
        setupStatus.replaceChildren();
      } catch (e) {
        show(setupStatus, notice(e.code === 'mfa_already_enabled' ? 'Two-factor authentication is already on.' : e.message, e.code === 'mfa_already_enabled' ? 'info' : 'error'));
      }
    },
  });
  const disableStatus = el('div');
  const disable = cardForm(
    'disable-2fa-title',
    'Turn off two-factor authentication',
    el('label', { class: 'field' }, el('span', { text: 'Current code or recovery code' }), el('input', { name: 'code', autocomplete: 'one-time-code', required: true })),
    el('button', { type: 'submit', text: 'Turn off' }),
    disableStatus,
  );
  onSubmit(disable, disableStatus, async (values) => {
    await api('POST', '/auth/totp/disable', { code: values.code.trim() });
    disable.reset();
    show(disableStatus, notice('Two-factor authentication is off.', 'info'));
  });
  show(
    ui.main,
    el('h2', { text: 'Two-factor authentication' }),
    el('p', { text: 'With two-factor authentication on, signing in also asks for a code from an authenticator app (TOTP).' }),
    el('div', { class: 'card' }, el('h3', { text: 'Turn on' }), setupButton, setupStatus, setupArea),
    disable,
  );
}

function enableForm(setup) {
  const status = el('div');
  const qrFigure = el('figure', { class: 'qr-figure' }, el('figcaption', { class: 'muted', text: 'Authenticator QR code' }));
  // The encoder is loaded only here, to keep the first page small.
  import('../qr.js')
    .then(({ qrSvg }) => qrFigure.prepend(qrSvg(setup.otpauth_uri, 'QR code for your authenticator app')))
    .catch((e) => qrFigure.append(notice(`Could not draw the QR code: ${e.message}`)));
  const form = el(
    'form',
    { 'aria-label': 'Confirm two-factor authentication' },
    el('p', { text: 'Scan this QR code with your authenticator app (or type in the key below, or open the link on a phone), then enter the code it shows.' }),
    qrFigure,
    el('label', { class: 'field' }, el('span', { text: 'Secret key' }), el('input', { readonly: true, value: setup.secret, class: 'secret', spellcheck: 'false' })),
    el('p', {}, el('a', { href: setup.otpauth_uri, text: 'Open in authenticator app' })),
    el('label', { class: 'field' }, el('span', { text: 'Code from your app' }), el('input', { name: 'code', autocomplete: 'one-time-code', inputmode: 'numeric', required: true })),
    el('button', { type: 'submit', text: 'Turn on two-factor authentication' }),
    status,
  );
  onSubmit(form, status, async (values) => {
    const r = await api('POST', '/auth/totp/enable', { code: values.code.trim() });
    show(
      form,
      el(
        'div',
        { class: 'secret-box card', role: 'status' },
        el('h3', { text: 'Two-factor authentication is on' }),
        el('p', { text: 'Save these recovery codes somewhere safe. Each works once if you lose your authenticator; they are shown only now.' }),
        el('ul', { class: 'recovery-codes', 'aria-label': 'Recovery codes' }, r.recovery_codes.map((c) => el('li', {}, el('code', { text: c })))),
      ),
    );
  });
  return form;
}
