// The status page fails on purpose: a console error, a 404 from an API call and a
// missing image. `document.body.dataset.status` becomes "done" once both have failed.
(function () {
  'use strict';
  var pending = 2;
  function settled() {
    pending -= 1;
    if (pending === 0) document.body.dataset.status = 'done';
  }

  function init() {
    console.warn('Ridgeline status: the delivery-estimate service is degraded.');
    var estimate = document.getElementById('estimate-status');
    fetch('/demo/api/delivery-estimate?zip=94107', { headers: { Accept: 'application/json' } })
      .then(function (response) {
        if (!response.ok) throw new Error('HTTP ' + response.status);
        return response.json();
      })
      .then(function () { estimate.textContent = 'Operational'; })
      .catch(function (error) {
        console.error('Ridgeline status: delivery estimates failed to load (' + error.message + ')');
        estimate.textContent = 'Unavailable';
        estimate.className = 'bad';
      })
      .then(settled);

    var banner = document.getElementById('broken-banner');
    var caption = document.getElementById('banner-status');
    function imageDone(ok) {
      caption.textContent = ok ? 'Banner loaded.' : 'The banner image is missing (404).';
      settled();
    }
    if (banner.complete) imageDone(banner.naturalWidth > 0);
    else {
      banner.addEventListener('load', function () { imageDone(true); });
      banner.addEventListener('error', function () { imageDone(false); });
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
