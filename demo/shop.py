"""The demo shop served at `/demo/`: public pages that `manage.py demo` drives through a
runtime, so a first run shows every kind of record (navigation, typing, form submits,
a download, a console error, failed requests, a second tab, a mutation-heavy page).

No database: products are a constant, the signed-in user is a signed cookie and an order
lives in the signed token of its URL. Every script is a static file (the site's CSP
allows no inline script or style).
"""

import csv
import io
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.crypto import salted_hmac

app_name = "demo"

USER_COOKIE = "demo_user"
ORDER_SALT = "bctrl.demo.order"
USER_SALT = "bctrl.demo.user"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_EXPIRY = re.compile(r"^(0[1-9]|1[0-2])\s*/\s*([0-9]{2})$")


@dataclass(frozen=True)
class Product:
    slug: str
    name: str
    price: Decimal
    tagline: str
    description: str
    swatch: int  # a CSS class of static/demo/demo.css, the product's "photo"


PRODUCTS = [
    Product(
        "trail-runner",
        "Trail Runner 2",
        Decimal("119.00"),
        "Light shoes for rough ground",
        "A grippy outsole, a rock plate and a breathable mesh upper: made for long days "
        "on technical trails.",
        1,
    ),
    Product(
        "summit-pack",
        "Summit Pack 28 L",
        Decimal("89.50"),
        "A day pack that carries like a bigger one",
        "A ventilated back panel, hip-belt pockets and a rain cover tucked in the lid.",
        2,
    ),
    Product(
        "alpine-shell",
        "Alpine Shell Jacket",
        Decimal("239.00"),
        "Waterproof, windproof, packable",
        "Three-layer fabric, pit zips and a helmet-compatible hood; packs into its own pocket.",
        3,
    ),
    Product(
        "camp-mug",
        "Titanium Camp Mug",
        Decimal("24.90"),
        "450 ml, 72 g",
        "Folding handles, volume marks and a lid that doubles as a strainer.",
        4,
    ),
    Product(
        "headlamp",
        "Ridge Headlamp 400",
        Decimal("44.00"),
        "400 lumens, USB-C",
        "A red night mode, a lock-out switch and eight hours at medium brightness.",
        5,
    ),
    Product(
        "trek-poles",
        "Carbon Trek Poles",
        Decimal("129.00"),
        "Three sections, 250 g each",
        "Cork grips, flick locks and tips for rock, snow and mud.",
        6,
    ),
]
PRODUCTS_BY_SLUG = {product.slug: product for product in PRODUCTS}
SHIPPING = Decimal("6.90")


def product_of(slug: str) -> Product:
    product = PRODUCTS_BY_SLUG.get(slug)
    if product is None:
        raise Http404(f"No product {slug!r}.")
    return product


def signed_in_user(request: HttpRequest) -> str | None:
    value = request.get_signed_cookie(USER_COOKIE, default=None, salt=USER_SALT)
    return value if isinstance(value, str) else None


def page(request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> Any:
    return render(
        request,
        f"demo/{template}",
        {"demo_user": signed_in_user(request), **context},
        status=status,
    )


# Pages ----------------------------------------------------------------------------------


def home(request: HttpRequest) -> HttpResponse:
    return page(request, "home.html", {"featured": PRODUCTS[:3]})


def product_list(request: HttpRequest) -> HttpResponse:
    return page(request, "products.html", {"products": PRODUCTS})


def product_detail(request: HttpRequest, slug: str) -> HttpResponse:
    product = product_of(slug)
    others = [p for p in PRODUCTS if p.slug != slug][:3]
    return page(request, "product.html", {"product": product, "others": others})


def sign_in(request: HttpRequest) -> HttpResponse:
    errors: dict[str, str] = {}
    email = ""
    next_url = request.POST.get("next") or request.GET.get("next") or reverse("demo:products")
    if not next_url.startswith("/demo/"):
        next_url = reverse("demo:products")
    if request.method == "POST":
        email = request.POST.get("email", "").strip()
        password = request.POST.get("password", "")
        if not _EMAIL.match(email):
            errors["email"] = "Enter an email address such as ada@example.com."
        if len(password) < 6:
            errors["password"] = "The password has at least 6 characters."  # noqa: S105
        if not errors:
            response = HttpResponseRedirect(next_url)
            response.set_signed_cookie(
                USER_COOKIE, email, salt=USER_SALT, httponly=True, samesite="Lax", max_age=3600
            )
            return response
    return page(
        request,
        "signin.html",
        {"errors": errors, "email": email, "next": next_url},
        status=400 if errors else 200,
    )


def sign_out(request: HttpRequest) -> HttpResponse:
    response = HttpResponseRedirect(reverse("demo:home"))
    response.delete_cookie(USER_COOKIE)
    return response


def checkout_errors(data: dict[str, str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if len(data["name"]) < 2:
        errors["name"] = "Enter the name on the order."
    if not _EMAIL.match(data["email"]):
        errors["email"] = "Enter an email address such as ada@example.com."
    if len(data["address"]) < 5:
        errors["address"] = "Enter a delivery address."
    card = re.sub(r"[\s-]", "", data["card"])
    if not (card.isdigit() and len(card) == 16):
        errors["card"] = "A card number has 16 digits."
    expiry = _EXPIRY.match(data["expiry"])
    if expiry is None:
        errors["expiry"] = "Enter the expiry date as MM/YY."
    if not data["quantity"].isdigit() or not 1 <= int(data["quantity"]) <= 9:
        errors["quantity"] = "Order 1 to 9 items."
    return errors


def checkout(request: HttpRequest) -> HttpResponse:
    product = PRODUCTS_BY_SLUG.get(request.GET.get("product") or request.POST.get("product", ""))
    product = product or PRODUCTS[0]
    fields = ("name", "email", "address", "card", "expiry", "quantity")
    data = {name: "" for name in fields} | {"quantity": "1"}
    if signed_in_user(request):
        data["email"] = signed_in_user(request) or ""
    errors: dict[str, str] = {}
    if request.method == "POST":
        data = {name: request.POST.get(name, "").strip() for name in fields}
        errors = checkout_errors(data)
        if not errors:
            card = re.sub(r"[\s-]", "", data["card"])
            number = salted_hmac(ORDER_SALT, f"{data}{timezone.now()}").hexdigest()[:8].upper()
            token = signing.dumps(
                {
                    "no": f"BC-{number}",
                    "p": product.slug,
                    "q": int(data["quantity"]),
                    "n": data["name"][:80],
                    "a": data["address"][:200],
                    "c": card[-4:],
                    "t": timezone.now().isoformat(timespec="seconds"),
                },
                salt=ORDER_SALT,
                compress=True,
            )
            return HttpResponseRedirect(reverse("demo:order", args=[token]))
    # The card number is never sent back to the page.
    data["card"] = ""
    return page(
        request,
        "checkout.html",
        {"product": product, "data": data, "errors": errors, "shipping": SHIPPING},
        status=400 if errors else 200,
    )


def order_of(token: str) -> dict[str, Any]:
    try:
        order: dict[str, Any] = signing.loads(token, salt=ORDER_SALT)
    except signing.BadSignature as exc:
        raise Http404("No such order.") from exc
    product = product_of(order["p"])
    subtotal = product.price * order["q"]
    order.update(
        product=product,
        subtotal=subtotal,
        shipping=SHIPPING,
        total=subtotal + SHIPPING,
        token=token,
    )
    return order


def order(request: HttpRequest, token: str) -> HttpResponse:
    return page(request, "order.html", {"order": order_of(token)})


def receipt(request: HttpRequest, token: str) -> HttpResponse:
    """The order's receipt as a CSV file the browser downloads."""
    placed = order_of(token)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["order", "placed", "item", "quantity", "unit price", "amount"])
    product = placed["product"]
    writer.writerow(
        [placed["no"], placed["t"], product.name, placed["q"], product.price, placed["subtotal"]]
    )
    writer.writerow([placed["no"], placed["t"], "Shipping", 1, SHIPPING, SHIPPING])
    writer.writerow([placed["no"], placed["t"], "Total", "", "", placed["total"]])
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="receipt-{placed["no"]}.csv"'
    response["Cache-Control"] = "no-store"
    return response


def help_center(request: HttpRequest) -> HttpResponse:
    return page(request, "help.html", {})


def chat(request: HttpRequest) -> HttpResponse:
    return page(request, "chat.html", {})


def status(request: HttpRequest) -> HttpResponse:
    """A page whose script logs a console error and whose image and API call fail (404)."""
    return page(request, "status.html", {})


def stress(request: HttpRequest) -> HttpResponse:
    """A page that mutates thousands of DOM nodes per second (static/demo/stress.js)."""
    return page(request, "stress.html", {})


urlpatterns = [
    path("", home, name="home"),
    path("products", product_list, name="products"),
    path("products/<slug:slug>", product_detail, name="product"),
    path("signin", sign_in, name="signin"),
    path("signout", sign_out, name="signout"),
    path("checkout", checkout, name="checkout"),
    path("orders/<str:token>", order, name="order"),
    path("orders/<str:token>/receipt.csv", receipt, name="receipt"),
    path("help", help_center, name="help"),
    path("chat", chat, name="chat"),
    path("status", status, name="status"),
    path("stress", stress, name="stress"),
]
