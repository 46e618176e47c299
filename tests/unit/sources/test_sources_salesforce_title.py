"""A "Title" column means what its export means by it: Salesforce's (and Zoho CRM's) is the person's job title,
Outlook's a form of address (Mr., Dr.). Told apart by the export's header, never by the value."""

from __future__ import annotations

import json

import pytest
from source_payloads import ctx_for

from pipeline.sources import customer, event
from pipeline.sources.fields import collect

#: A Salesforce contacts report as "Export > Details only" writes it, and its footer.
SALESFORCE_REPORT = (
    b'"First Name","Last Name","Title","Account Name","Mailing Street","Mailing City","Mailing State/Province",'
    b'"Mailing Zip/Postal Code","Mailing Country","Phone","Mobile","Email","Email Opt Out","Contact Owner",'
    b'"Last Service Delivery"\r\n'
    b'"Jane","Doe","VP Sales","Acme Corp","1 Main St","Austin","TX","78701","United States","(512) 555-0134","",'
    b'"jane.doe@example.com","0","Sam Owner","2024-05-01"\r\n'
)

#: Outlook's "Export to a file > Comma Separated Values": "Title" is the form of address, "Job Title" the position.
OUTLOOK = (
    b"Title,First Name,Middle Name,Last Name,Suffix,Company,Department,Job Title,Business Street,Business City,"
    b"E-mail Address,E-mail Display Name,Last Service Delivery\r\n"
    b"Dr.,Anna,,Meyer,,Initech,Sales,Head of Sales,Hauptstr. 1,Berlin,anna@example.com,Anna Meyer,2024-05-01\r\n"
    b"Mr.,Bob,,Jones,,,,,,,bob@example.com,,2024-05-01\r\n"
)


def test_a_salesforce_report_keeps_its_title_as_the_job_title() -> None:
    """Salesforce's "Title" was dropped: the position of every contact of a Salesforce export was lost."""
    [jane] = customer.parse(SALESFORCE_REPORT, ctx_for("customer", SALESFORCE_REPORT, "text/csv"))
    assert jane.person.position == "VP Sales"
    assert (jane.person.first_name, jane.person.last_name, jane.person.company) == ("Jane", "Doe", "Acme Corp")


def test_salesforce_s_data_export_and_its_api_records_too() -> None:
    """The weekly Data Export names the columns by their API names; the REST API's records say their type."""
    data_export = (
        b'"Id","AccountId","Salutation","FirstName","LastName","Title","Email","HasOptedOutOfEmail",'
        b'"Last_Service__c"\r\n'
        b'"0035g00000A","0015g00000B","Ms.","Jane","Doe","Head of IT","jane.doe@example.com","false","2024-05-01"\r\n'
    )
    [jane] = customer.parse(data_export, ctx_for("customer", data_export, "text/csv"))
    assert (jane.person.position, jane.person.first_name, jane.person.last_name) == ("Head of IT", "Jane", "Doe")
    api = json.dumps(
        {
            "totalSize": 1,
            "done": True,
            "records": [
                {
                    "attributes": {"type": "Contact", "url": "/services/data/v59.0/sobjects/Contact/0035g00000A"},
                    "FirstName": "Jane",
                    "LastName": "Doe",
                    "Title": "CFO",
                    "Email": "jane.doe@example.com",
                    "Last_Service__c": "2024-05-01",
                }
            ],
        }
    ).encode()
    [jane] = customer.parse(api, ctx_for("customer", api, "application/json"))
    assert jane.person.position == "CFO"


def test_a_salesforce_campaign_s_attendees_keep_their_title() -> None:
    """The same header read by the event adapter (a campaign's members exported for an event)."""
    raw = (
        b'"First Name","Last Name","Title","Account Name","Email","Lead Source","Event Date"\r\n'
        b'"Jane","Doe","Procurement Lead","Acme Corp","jane.doe@example.com","Trade Show","2024-05-14"\r\n'
    )
    [jane] = event.parse(raw, ctx_for("event", raw, "text/csv"))
    assert jane.person.position == "Procurement Lead"


def test_outlook_s_title_stays_a_form_of_address() -> None:
    """Outlook's "Title" (Dr., Mr.) is no position and no part of the name; its "Job Title" is the position."""
    anna, bob = customer.parse(OUTLOOK, ctx_for("customer", OUTLOOK, "text/csv"))
    assert (anna.person.position, anna.person.first_name, anna.person.last_name) == ("Head of Sales", "Anna", "Meyer")
    assert (bob.person.position, bob.person.first_name, bob.person.last_name) == (None, "Bob", "Jones")


@pytest.mark.parametrize(
    "header",
    [
        ["Title", "First Name", "Last Name", "E-mail Address"],  # Outlook without a job title
        ["Title", "First Name", "Surname", "Email"],  # a British mailing list: Mr, Mrs, Dr
    ],
)
def test_a_title_column_without_a_salesforce_header_is_no_position(header: list[str]) -> None:
    assert "position" not in collect(zip(header, ["Dr", "Anna", "Meyer", "anna@example.com"], strict=True))


def test_the_header_decides_not_the_value() -> None:
    """A Salesforce Title is the job title whatever it holds; an empty one leaves the position empty, and a column
    that names the position beside it wins."""
    salesforce = ["First Name", "Last Name", "Title", "Account Name", "Email"]
    assert collect(zip(salesforce, ["Jo", "Li", "Mr.", "Acme", "jo@example.com"], strict=True))["position"] == "Mr."
    assert "position" not in collect(zip(salesforce, ["Jo", "Li", "", "Acme", "jo@example.com"], strict=True))
    both = [*salesforce, "Job Title"]
    values = ["Jo", "Li", "Director", "Acme", "jo@example.com", "Head of Data"]
    assert collect(zip(both, values, strict=True))["position"] == "Head of Data"
