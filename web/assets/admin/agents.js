// The Agents section of the admin console (`/admin#/agents`): for each org, its AI agents
// (AGENT-1) — create one (endpoint, model, API key, system prompt, temperature, output-token
// cap, context size, monthly token budget), change it, rotate or clear its API key, delete it
// — each agent's usage per day (AGENT-4: calls, tokens in and out, failures, p50/p95 latency)
// and the org's monthly token budget for all its agents.
//
// The API key is write-only here: it is typed into a password field and sent, and the form is
// drawn afresh after; what the server shows back is its mask (`****abcd`), never the key.
// Only an org's owners and admins manage its agents (the org's `permissions` list
// `manage_agents`); for other orgs the section says who may.

import { api } from '../api.js';
import { el, field, inlineForm, onSubmit, smallButton } from '../dom.js';
import { count, errorTo, managedOrgCard, replaceOrgCard, openParts, row, showOrgCards, table } from './console.js';

/** org id → `{edit, usage}`: the id of the agent whose edit form, or usage, is open there. */
const open = openParts(() => ({ edit: null, usage: null }));

export async function agentsView() {
  open.clear();
  const orgs = await api('GET', '/orgs');
  await showOrgCards(
    'Agents',
    'AI agents of your organizations: each is a bot account that answers in conversations with a model of an OpenAI-compatible endpoint. An organization’s owners and admins manage them.',
    orgs.items,
    orgCard,
  );
}

function orgCard(org) {
  return managedOrgCard(org, 'agents', 'manage_agents', async () => {
    const [agents, budget] = await Promise.all([api('GET', `/orgs/${org.id}/agents`), api('GET', `/orgs/${org.id}/agent-budget`)]);
    const status = el('div');
    const refresh = () => replaceOrgCard(org, orgCard);
    const shown = open.of(org);
    const editing = agents.items.find((a) => a.id === shown.edit);
    const usageOf = agents.items.find((a) => a.id === shown.usage);
    return [
      budgetPart(org, budget, refresh),
      el('div', { class: 'table-scroll' }, table(`Agents of ${org.name}`, ['Agent', 'Model', 'Endpoint', 'API key', 'Monthly budget', 'Actions'], agents.items.map((a) => agentRow(org, a, status, refresh)))),
      status,
      usageOf ? usagePart(org, usageOf, () => { shown.usage = null; return refresh(); }) : null,
      editing ? agentForm(org, editing, refresh) : agentForm(org, null, refresh),
    ];
  });
}

/** The org's monthly token budget for all its agents, this month's use, and the form to set it. */
function budgetPart(org, budget, refresh) {
  const status = el('div');
  const cap = budget.monthly_token_budget;
  const form = inlineForm(
    `Monthly token budget of ${org.name}`,
    { name: 'budget', type: 'number', min: 0, step: 1, value: cap ?? '', 'aria-label': `Monthly token budget of ${org.name} (empty: no cap)`, placeholder: 'No cap' },
    'Save budget',
    (values) =>
      api('PUT', `/orgs/${org.id}/agent-budget`, { monthly_token_budget: values.budget === '' ? null : Number(values.budget) }).then(() => refresh(), errorTo(status)),
  );
  return el(
    'section',
    { class: 'org-part', 'aria-label': `Token budget of ${org.name}` },
    el('h4', { text: 'Token budget' }),
    el('p', {
      class: 'budget-use',
      text: `This month (UTC) the agents used ${count(budget.used)} tokens${cap === null ? ' (no cap)' : ` of ${count(cap)}`}${budget.reserved ? `; ${count(budget.reserved)} reserved by answers being written` : ''}.`,
    }),
    form,
    status,
  );
}

function agentRow(org, a, status, refresh) {
  const path = `/orgs/${org.id}/agents/${a.id}`;
  const failed = errorTo(status);
  const shown = open.of(org);
  const reopen = (part, id) => () => {
    shown[part] = id;
    return refresh();
  };
  return row(
    { 'data-agent-id': a.id },
    el('th', { scope: 'row', text: a.name }),
    a.model,
    el('td', {}, el('code', { text: a.endpoint })),
    el('td', {}, a.api_key ? el('code', { text: a.api_key }) : el('span', { class: 'muted', text: 'none' })),
    a.monthly_token_budget === null ? 'no cap of its own' : `${count(a.monthly_token_budget)} tokens`,
    el(
      'td',
      { class: 'actions-cell' },
      smallButton('Usage', `Usage of agent ${a.name}`, reopen('usage', a.id)),
      smallButton('Edit', `Edit agent ${a.name}`, reopen('edit', a.id)),
      a.api_key ? smallButton('Clear key', `Clear the API key of agent ${a.name}`, () => api('PATCH', path, { api_key: null }).then(() => refresh(), failed)) : null,
      smallButton('Delete', `Delete agent ${a.name}`, () =>
        api('DELETE', path).then(() => {
          if (shown.edit === a.id) shown.edit = null;
          if (shown.usage === a.id) shown.usage = null;
          return refresh();
        }, failed),
      ),
    ),
  );
}

/** A number field that may stay empty (`''` then: the server's default, or null). */
function numberField(label, name, value, attrs) {
  return field(label, { name, type: 'number', value: value ?? '', ...attrs });
}

/**
 * The form that creates an agent in `org` (`agent` null) or changes `agent`. Its API key field
 * starts empty and is only sent when filled: on an agent, filling it rotates the key.
 */
function agentForm(org, agent, refresh) {
  const status = el('div');
  const title = agent ? `Edit agent ${agent.name}` : `Create an agent in ${org.name}`;
  const prompt = el('textarea', { name: 'system_prompt', rows: 3, maxlength: 8000 });
  prompt.value = agent?.system_prompt ?? '';
  const form = el(
    'form',
    { class: 'card agent-form', 'aria-label': title },
    el('h4', { text: agent ? `Edit agent ${agent.name}` : 'Create an agent' }),
    field('Name', { name: 'name', required: true, maxlength: 64, autocomplete: 'off', value: agent?.name ?? '' }),
    field('Endpoint URL', { name: 'endpoint', type: 'url', required: true, placeholder: 'https://api.openai.com/v1', autocomplete: 'off', spellcheck: 'false', value: agent?.endpoint ?? '' }),
    field('Model', { name: 'model', required: true, placeholder: 'gpt-4o-mini', autocomplete: 'off', spellcheck: 'false', value: agent?.model ?? '' }),
    field(agent ? `New API key (empty: keep ${agent.api_key ?? 'none'})` : 'API key (optional)', { name: 'api_key', type: 'password', autocomplete: 'new-password', spellcheck: 'false' }),
    el('label', { class: 'field' }, el('span', { text: 'System prompt (optional)' }), prompt),
    el(
      'div',
      { class: 'field-row' },
      numberField('Temperature (0–2, empty: the provider’s default)', 'temperature', agent?.temperature, { min: 0, max: 2, step: 0.1 }),
      numberField('Max output tokens', 'max_output_tokens', agent?.max_output_tokens, { min: 1, max: 32768, step: 1, placeholder: '1024' }),
      numberField('Context messages', 'context_messages', agent?.context_messages, { min: 1, max: 200, step: 1, placeholder: '20' }),
      numberField('Monthly token budget (empty: no cap of its own)', 'monthly_token_budget', agent?.monthly_token_budget, { min: 0, step: 1 }),
    ),
    el('button', { type: 'submit', text: agent ? 'Save agent' : 'Create agent' }),
    agent ? el('button', { type: 'button', class: 'secondary', text: 'Cancel', onclick: () => { open.of(org).edit = null; refresh(); } }) : null,
    status,
  );
  onSubmit(form, status, async (v) => {
    const endpoint = form.querySelector('[name="endpoint"]');
    endpoint.removeAttribute('aria-invalid');
    const number = (raw) => (raw === '' ? null : Number(raw));
    const body = {
      name: v.name.trim(),
      endpoint: v.endpoint.trim(),
      model: v.model.trim(),
      system_prompt: v.system_prompt.trim() || null,
      temperature: number(v.temperature),
      monthly_token_budget: number(v.monthly_token_budget),
    };
    // Absent: the server's default; these two take no null.
    if (v.max_output_tokens !== '') body.max_output_tokens = Number(v.max_output_tokens);
    if (v.context_messages !== '') body.context_messages = Number(v.context_messages);
    if (v.api_key) body.api_key = v.api_key;
    if (!agent) for (const k of ['system_prompt', 'temperature', 'monthly_token_budget']) if (body[k] === null) delete body[k];
    try {
      await api(agent ? 'PATCH' : 'POST', agent ? `/orgs/${org.id}/agents/${agent.id}` : `/orgs/${org.id}/agents`, body);
    } catch (e) {
      if (e.field?.replace(/^\//, '') === 'endpoint') endpoint.setAttribute('aria-invalid', 'true');
      throw e;
    } finally {
      // The key leaves the page either way: it is never kept or shown.
      form.querySelector('[name="api_key"]').value = '';
    }
    open.of(org).edit = null;
    await refresh();
  });
  return form;
}

/** One agent's usage per day over the last 30 days (the server's default window). */
function usagePart(org, agent, close) {
  const status = el('div');
  const body = el('tbody');
  const panel = el(
    'section',
    { class: 'org-part usage', 'aria-label': `Usage of agent ${agent.name}` },
    el('h4', { text: `Usage of ${agent.name} (last 30 days, UTC)` }),
    el('button', { type: 'button', class: 'small secondary', text: 'Close', 'aria-label': `Close the usage of agent ${agent.name}`, onclick: close }),
    status,
    el('div', { class: 'table-scroll' }, table(`Usage of agent ${agent.name} per day`, ['Day', 'Calls', 'Tokens in', 'Tokens out', 'Failures', 'p50 latency', 'p95 latency'], [])),
  );
  panel.querySelector('tbody').replaceWith(body);
  const ms = (n) => (n === null || n === undefined ? '—' : `${count(n)} ms`);
  api('GET', `/orgs/${org.id}/agents/${agent.id}/usage`).then(
    (usage) => {
      const days = [...usage.items].sort((a, b) => b.day.localeCompare(a.day));
      body.replaceChildren(
        ...(days.length
          ? days.map((d) => row({}, el('th', { scope: 'row', text: d.day }), count(d.calls), count(d.tokens_in), count(d.tokens_out), count(d.failures), ms(d.latency_p50_ms), ms(d.latency_p95_ms)))
          : [el('tr', {}, el('td', { colspan: 7, class: 'empty', text: 'No calls in these days.' }))]),
      );
    },
    errorTo(status),
  );
  return panel;
}
