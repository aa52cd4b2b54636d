// Checkout: validation in the page before the form is sent (the server checks again),
// and the order total as the quantity changes.
(function () {
  'use strict';
  var EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
  var EXPIRY = /^(0[1-9]|1[0-2])\s*\/\s*[0-9]{2}$/;
  var rules = {
    name: function (v) { return v.length >= 2 ? '' : 'Enter the name on the order.'; },
    email: function (v) { return EMAIL.test(v) ? '' : 'Enter an email address such as ada@example.com.'; },
    address: function (v) { return v.length >= 5 ? '' : 'Enter a delivery address.'; },
    card: function (v) { return /^[0-9]{16}$/.test(v.replace(/[\s-]/g, '')) ? '' : 'A card number has 16 digits.'; },
    expiry: function (v) { return EXPIRY.test(v) ? '' : 'Enter the expiry date as MM/YY.'; },
    quantity: function (v) { var n = Number(v); return n >= 1 && n <= 9 && Math.floor(n) === n ? '' : 'Order 1 to 9 items.'; }
  };

  function init() {
    var form = document.getElementById('checkout-form');
    if (!form) return;
    var summary = document.getElementById('form-summary');
    var total = document.getElementById('order-total');

    function check(name) {
      var field = form.elements[name];
      var message = rules[name](field.value.trim());
      var wrapper = form.querySelector('[data-field="' + name + '"]');
      wrapper.classList.toggle('invalid', message !== '');
      form.querySelector('[data-error-for="' + name + '"]').textContent = message;
      return message === '';
    }

    function updateTotal() {
      var quantity = Number(form.elements.quantity.value) || 0;
      var amount = Number(total.dataset.unit) * quantity + Number(total.dataset.shipping);
      total.textContent = '$' + amount.toFixed(2);
    }

    form.addEventListener('submit', function (event) {
      var ok = Object.keys(rules).map(check).every(Boolean);
      summary.classList.toggle('hidden', ok);
      if (!ok) {
        event.preventDefault();
        var first = form.querySelector('.field.invalid input, .field.invalid textarea');
        if (first) first.focus();
      }
    });
    Object.keys(rules).forEach(function (name) {
      form.elements[name].addEventListener('blur', function () {
        if (form.querySelector('[data-field="' + name + '"]').classList.contains('invalid')) check(name);
      });
    });
    form.elements.quantity.addEventListener('input', updateTotal);
    updateTotal();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
