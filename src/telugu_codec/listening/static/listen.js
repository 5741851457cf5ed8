// The MUSHRA test page (ITU-R BS.1534): one trial at a time, a slider per hidden version.
// The server keeps which system is behind which slider; this page only sees slot numbers.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  let session = null;
  let current = 0;

  async function api(path, body) {
    const init = body === undefined ? {} : {
      method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body),
    };
    const response = await fetch(path, init);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || ('HTTP ' + response.status));
    return data;
  }

  function slotName(i) {
    return i < 26 ? String.fromCharCode(65 + i) : 'S' + (i + 1);
  }

  function show(state) {
    for (const id of ['start', 'trial', 'done']) $(id).hidden = id !== state;
    document.body.dataset.state = state;
  }

  function updateSubmit() {
    const sliders = [...document.querySelectorAll('#sliders input[type=range]')];
    const ready = sliders.length > 0 && sliders.every((s) => s.dataset.touched === '1');
    $('submit').disabled = !ready;
    $('hint').hidden = ready;
  }

  function showTrial() {
    const trial = session.trials[current];
    const total = session.trials.length;
    $('progress-text').textContent = 'Trial ' + (current + 1) + ' of ' + total;
    $('progress').max = total;
    $('progress').value = current;
    const base = '/audio/' + session.session + '/' + trial.index + '/';
    $('ref-audio').src = base + 'ref.wav';
    const box = $('sliders');
    box.replaceChildren();
    for (let slot = 0; slot < trial.slots; slot++) {
      const row = document.createElement('div');
      row.className = 'stimulus';
      row.dataset.slot = String(slot);
      const label = document.createElement('span');
      label.className = 'label';
      label.textContent = slotName(slot);
      const audio = document.createElement('audio');
      audio.controls = true;
      audio.preload = 'auto';
      audio.src = base + slot + '.wav';
      const slider = document.createElement('input');
      slider.type = 'range';
      slider.min = '0';
      slider.max = '100';
      slider.step = '1';
      slider.value = '0';
      slider.className = 'score';
      slider.dataset.slot = String(slot);
      slider.setAttribute('aria-label', 'score for ' + slotName(slot));
      const out = document.createElement('output');
      out.textContent = '-';
      slider.addEventListener('input', () => {
        slider.dataset.touched = '1';
        out.textContent = slider.value;
        updateSubmit();
      });
      row.append(label, audio, slider, out);
      box.append(row);
    }
    $('trial-error').textContent = '';
    updateSubmit();
    show('trial');
  }

  async function begin() {
    const rater = $('rater').value.trim();
    if (!rater) {
      $('start-error').textContent = 'Please enter your name.';
      return;
    }
    $('begin').disabled = true;
    try {
      session = await api('/api/session', {rater: rater});
      current = 0;
      showTrial();
    } catch (e) {
      $('start-error').textContent = e.message;
      $('begin').disabled = false;
    }
  }

  async function submit() {
    const sliders = [...document.querySelectorAll('#sliders input[type=range]')];
    const scores = sliders.map((s) => Number(s.value));
    $('submit').disabled = true;
    try {
      const result = await api('/api/rate', {
        session: session.session, trial: session.trials[current].index, scores: scores,
      });
      $('saved-file').textContent = result.saved;
      document.querySelectorAll('audio').forEach((a) => a.pause());
      current += 1;
      if (current < session.trials.length) {
        showTrial();
      } else {
        $('progress').value = session.trials.length;
        show('done');
      }
    } catch (e) {
      $('trial-error').textContent = e.message;
      $('submit').disabled = false;
    }
  }

  // one player at a time: starting one pauses the others
  document.addEventListener('play', (e) => {
    document.querySelectorAll('audio').forEach((a) => { if (a !== e.target) a.pause(); });
  }, true);

  $('begin').addEventListener('click', begin);
  $('submit').addEventListener('click', submit);
  $('rater').addEventListener('keydown', (e) => { if (e.key === 'Enter') begin(); });
  api('/api/info').then((info) => {
    $('rater').value = info.rater || '';
    $('trial-count').textContent = String(info.trials);
  }).catch((e) => { $('start-error').textContent = e.message; });
})();
