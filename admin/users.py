"""Administration > Users (Administrator only): list, search, create, edit roles and active flag, delete, CSV."""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response
from wtforms import BooleanField, EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, Length, Optional, ValidationError

from admin import bp
from admin.fields import CheckboxChoices, options
from admin.paging import PER_PAGE_CHOICES, csv_response, page_args
from core import audit
from core.access import roles_required
from core.extensions import db
from core.models import Role, User, role_by_name


class UserForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=320)])
    display_name = StringField("Display name", validators=[Optional(), Length(max=256)])
    password = PasswordField("Password",
                             validators=[Optional(), Length(min=8, max=1024, message="Use at least 8 characters.")],
                             description="Optional: users who sign in with single sign-on need none.")
    roles = CheckboxChoices("Roles", choices=options((name, name) for name in Role.ALL))
    active = BooleanField("Active", default=True)
    submit = SubmitField("Save")

    def __init__(self, *args: object, editing: User | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing

    def validate_email(self, field: EmailField) -> None:
        email = (field.data or "").strip().lower()
        clash = db.session.scalar(select(User).where(func.lower(User.email) == email))
        if clash is not None and clash is not self.editing:
            raise ValidationError("A user with this email already exists.")


class DeleteForm(FlaskForm):
    submit = SubmitField("Delete")


SORTS = {"email": "Email A–Z", "-email": "Email Z–A", "name": "Name A–Z", "-name": "Name Z–A",
         "-created": "Newest first", "created": "Oldest first", "-last_sign_in": "Signed in lately"}
ACTIVE_CHOICES = {"": "Active or not", "yes": "Active", "no": "Disabled"}


@dataclass(frozen=True)
class UserListQuery:
    """The Users list's question: search text, active flag, role, sort."""

    q: str = ""
    active: str = ""
    role: str = ""
    sort: str = "email"

    def args(self) -> dict[str, str]:
        """The query string that reproduces the list (empty parts left out)."""
        return {k: v for k, v in (("q", self.q), ("active", self.active), ("role", self.role),
                                  ("sort", "" if self.sort == "email" else self.sort)) if v}


def _list_query() -> tuple[UserListQuery, str | None]:
    """The list's query from the URL; an unknown value is dropped and named in the message."""
    problems = []
    active, role, sort = (request.args.get(k, "").strip() for k in ("active", "role", "sort"))
    if active not in ACTIVE_CHOICES:
        problems.append(f'"{active[:20]}" is not a choice for Active')
        active = ""
    if role and role not in Role.ALL:
        problems.append(f'there is no role "{role[:40]}"')
        role = ""
    if sort and sort not in SORTS:
        problems.append(f'"{sort[:20]}" is not a sort order')
        sort = ""
    message = ("Showing every user instead: " + "; ".join(problems) + ".") if problems else None
    return UserListQuery(request.args.get("q", "").strip()[:256], active, role, sort or "email"), message


def _search(query: UserListQuery):  # type: ignore[no-untyped-def]
    columns = {"email": func.lower(User.email), "name": func.lower(User.display_name),
               "created": User.created_at, "last_sign_in": User.last_sign_in_at}
    column = columns[query.sort.lstrip("-")]
    order = column.desc().nulls_last() if query.sort.startswith("-") else column.asc().nulls_last()
    statement = select(User).order_by(order, User.id)
    if query.q:
        like = f"%{query.q.lower()}%"
        statement = statement.where(or_(func.lower(User.email).like(like), func.lower(User.display_name).like(like)))
    if query.active:
        statement = statement.where(User.active.is_(query.active == "yes"))
    if query.role:
        statement = statement.where(User.roles.any(Role.name == query.role))
    return statement


def _active_admins_excluding(user: User) -> int:
    return db.session.scalar(
        select(func.count(User.id)).join(User.roles)
        .where(Role.name == Role.ADMINISTRATOR, User.active.is_(True), User.id != user.id)
    ) or 0


def _lockout_problem(user: User, roles: set[str], active: bool) -> str | None:
    """Refuse changes that would leave no active Administrator, or lock the acting admin out."""
    keeps_admin = active and Role.ADMINISTRATOR in roles
    if user.id == current_user.id and not keeps_admin:
        return "You cannot remove your own Administrator role or disable your own account."
    if user.has_any_role(Role.ADMINISTRATOR) and not keeps_admin and _active_admins_excluding(user) == 0:
        return "At least one active Administrator must remain."
    return None


@bp.get("/users")
@roles_required(Role.ADMINISTRATOR)
def users() -> str:
    """Users: search, filter by active flag and role, sort, page size, the total and page numbers to jump to."""
    query, problem = _list_query()
    page, per_page = page_args()
    pagination = db.paginate(_search(query), page=page, per_page=per_page, error_out=False)
    return render_template("admin/users/list.html", pagination=pagination, query=query, q=query.q,
                           per_page=per_page, problem=problem, sorts=SORTS, active_choices=ACTIVE_CHOICES,
                           roles=Role.ALL, per_page_choices=PER_PAGE_CHOICES)


@bp.get("/users.csv")
@roles_required(Role.ADMINISTRATOR)
def users_csv() -> Response:
    query, _ = _list_query()
    audit.record("user.export", query.q or "all users", **{k: v for k, v in query.args().items() if k != "q"})
    db.session.commit()
    return csv_response("users.csv", ("Name", "Email", "Roles", "Active", "Last sign-in", "Created"),
                        _search(query).options(selectinload(User.roles)), _csv_row)


def _csv_row(user: User) -> tuple[object, ...]:
    return (user.display_name, user.email, "; ".join(sorted(user.role_names)), "yes" if user.active else "no",
            user.last_sign_in_at.isoformat() if user.last_sign_in_at else "", user.created_at.isoformat())


@bp.route("/users/new", methods=["GET", "POST"])
@roles_required(Role.ADMINISTRATOR)
def user_create() -> Response | str:
    form = UserForm(data={"roles": [Role.USER], "active": True})
    if form.validate_on_submit():
        user = User(email=form.email.data or "", display_name=(form.display_name.data or "").strip())
        user.set_password(form.password.data)
        user.active = form.active.data
        user.roles = [role_by_name(name) for name in form.roles.data or []]
        db.session.add(user)
        db.session.flush()
        audit.record("user.create", user.email, roles=sorted(user.role_names), active=user.active)
        db.session.commit()
        flash(f"User {user.email} created.", "success")
        return redirect(url_for("admin.users"))
    return render_template("admin/users/form.html", form=form, user=None)


@bp.route("/users/<id:user_id>", methods=["GET", "POST"])
@roles_required(Role.ADMINISTRATOR)
def user_edit(user_id: int) -> Response | str:
    user = db.session.get(User, user_id) or abort(404)
    form = UserForm(obj=user, editing=user, data=None if request.method == "POST" else {
        "email": user.email, "display_name": user.display_name, "roles": sorted(user.role_names),
        "active": user.active})
    if form.validate_on_submit():
        roles = set(form.roles.data or [])
        problem = _lockout_problem(user, roles, bool(form.active.data))
        if problem:
            flash(problem, "danger")
            return render_template("admin/users/form.html", form=form, user=user), 409  # type: ignore[return-value]
        before = {"email": user.email, "roles": sorted(user.role_names), "active": user.active}
        user.email = form.email.data or user.email
        user.display_name = (form.display_name.data or "").strip()
        user.active = bool(form.active.data)
        user.roles = [role_by_name(name) for name in sorted(roles)]
        if form.password.data:
            user.set_password(form.password.data)
        after = {"email": user.email, "roles": sorted(user.role_names), "active": user.active}
        audit.record("user.update", user.email, before=before, after=after,
                     credentials_changed=bool(form.password.data))  # a "password" key would be redacted
        db.session.commit()
        flash(f"User {user.email} saved.", "success")
        return redirect(url_for("admin.users"))
    return render_template("admin/users/form.html", form=form, user=user)


@bp.route("/users/<id:user_id>/delete", methods=["GET", "POST"])
@roles_required(Role.ADMINISTRATOR)
def user_delete(user_id: int) -> Response | str:
    user = db.session.get(User, user_id) or abort(404)
    form = DeleteForm()
    if form.validate_on_submit():
        problem = _lockout_problem(user, set(), False)
        if problem:
            flash(problem, "danger")
            return redirect(url_for("admin.users"))
        email = user.email
        db.session.delete(user)
        audit.record("user.delete", email)
        db.session.commit()
        flash(f"User {email} deleted.", "success")
        return redirect(url_for("admin.users"))
    return render_template("admin/users/delete.html", form=form, user=user)
