"""The shortest whole story: a seller lists, a buyer buys and rates."""


def test_list_buy_rate(market, unique):
    seller, buyer = market.seller(), market.buyer()
    seller_id = seller.register(unique("seller"))
    item_id = seller("RegisterItemForSale", name="lamp", category=7, keywords=["desk"],
                     condition="new", price=17.5, quantity=3)["item_id"]
    buyer.register(unique("buyer"))
    buyer("AddItemToCart", item_id=item_id, quantity=2)
    purchase = buyer("MakePurchase", card_name="B", card_number="4111111111111111",
                     expiry="12/99")["purchase"]
    assert purchase["total"] == 35.0
    buyer("ProvideFeedback", item_id=item_id, vote="up")
    rating = seller("GetSellerRating")
    assert (rating["seller_id"], rating["thumbs_up"], rating["items_sold"]) == (seller_id, 1, 2)
