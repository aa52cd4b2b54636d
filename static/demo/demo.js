// The demo shop's shared script: product filter, the help center's pop-up, the chat.
(function () {
  'use strict';

  function onReady(fn) {
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', fn);
    else fn();
  }

  onReady(function () {
    var filter = document.getElementById('product-filter');
    if (filter) {
      filter.addEventListener('input', function () {
        var needle = filter.value.trim().toLowerCase();
        document.querySelectorAll('#product-grid .product-card').forEach(function (card) {
          card.classList.toggle('hidden', needle !== '' && card.textContent.toLowerCase().indexOf(needle) === -1);
        });
      });
    }

    var chatButton = document.getElementById('open-chat');
    if (chatButton) {
      chatButton.addEventListener('click', function () {
        window.open(chatButton.getAttribute('data-popup'), 'ridgeline-chat', 'width=420,height=640');
      });
    }

    var chatForm = document.getElementById('chat-form');
    if (chatForm) {
      var input = document.getElementById('chat-input');
      var log = document.getElementById('chat-log');
      chatForm.addEventListener('submit', function (event) {
        event.preventDefault();
        var text = input.value.trim();
        if (!text) return;
        var mine = document.createElement('li');
        mine.className = 'me';
        mine.textContent = text;
        log.appendChild(mine);
        input.value = '';
        setTimeout(function () {
          var reply = document.createElement('li');
          reply.className = 'them';
          reply.textContent = 'Thanks! A person will answer shortly.';
          log.appendChild(reply);
        }, 300);
      });
    }
  });
})();
